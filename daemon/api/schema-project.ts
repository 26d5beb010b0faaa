/**
 * Keeps only what a JSON schema declares, the way fastify's response
 * serializer does, for routes that serialise with JSON.stringify themselves.
 */

/** The part of a JSON schema the projection reads. */
interface SchemaNode {
  type?: string | readonly string[];
  properties?: Readonly<Record<string, SchemaNode>>;
  items?: SchemaNode;
}

/** `value` with every object reduced to the properties its schema declares (undefined ones omitted). */
export function projectToSchema(value: unknown, schema: SchemaNode): unknown {
  if (value === null || value === undefined) return value;
  if (Array.isArray(value)) return schema.items ? value.map((v) => projectToSchema(v, schema.items!)) : value;
  if (typeof value === 'object' && schema.properties) {
    const out: Record<string, unknown> = {};
    for (const [k, sub] of Object.entries(schema.properties)) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = projectToSchema(v, sub);
    }
    return out;
  }
  return value;
}
