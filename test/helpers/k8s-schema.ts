/**
 * Offline validation of Kubernetes objects against the API's OpenAPI schema,
 * as carried by @kubernetes/client-node (a runtime dependency already): its
 * generated models list every field of every type (`attributeTypeMap`) and its
 * declaration files mark which fields are required. That is enough to catch
 * what `kubectl apply --validate=strict` catches: unknown or misspelt fields,
 * wrong value types, and missing required fields. Enum values and string
 * formats are not in those models and are not checked here.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as k8s from '@kubernetes/client-node';

/** One schema violation, with a JSON-pointer-like path into the object. */
export interface SchemaError {
  path: string;
  message: string;
}

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}

interface ModelClass {
  getAttributeTypeMap(): Attribute[];
}

const require = createRequire(import.meta.url);
const modelsDir = join(dirname(require.resolve('@kubernetes/client-node')), 'gen', 'models');
const requiredCache = new Map<string, Set<string>>();

function modelClass(name: string): ModelClass | undefined {
  const c = (k8s as unknown as Record<string, unknown>)[name];
  return typeof c === 'function' && 'getAttributeTypeMap' in c ? (c as unknown as ModelClass) : undefined;
}

// The generator writes required fields as `'name': Type;` and optional ones as `'name'?: Type;`.
function requiredFields(name: string): Set<string> {
  let set = requiredCache.get(name);
  if (!set) {
    const dts = readFileSync(join(modelsDir, `${name}.d.ts`), 'utf8');
    set = new Set([...dts.matchAll(/^\s+'([^']+)': /gm)].map((m) => m[1]!));
    requiredCache.set(name, set);
  }
  return set;
}

/** The client-node model name of a kind, e.g. apps/v1 DaemonSet -> V1DaemonSet. */
export function modelNameFor(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? '';
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function check(value: unknown, type: string, format: string, path: string, errors: SchemaError[]): void {
  // null is how YAML writes an empty value; the API treats it as unset.
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) {
      errors.push({ path, message: `expected an array, got ${typeName(value)}` });
      return;
    }
    for (const [i, item] of value.entries()) check(item, array[1]!, '', `${path}/${i}`, errors);
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeName(value) !== 'object') {
      errors.push({ path, message: `expected a map, got ${typeName(value)}` });
      return;
    }
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) check(v, map[1]!, '', `${path}/${k}`, errors);
    return;
  }
  switch (type) {
    case 'string':
    case 'Date':
      if (typeof value !== 'string') errors.push({ path, message: `expected a string, got ${typeName(value)}` });
      return;
    case 'number':
      if (typeof value !== 'number') errors.push({ path, message: `expected a number, got ${typeName(value)}` });
      else if ((format === 'int32' || format === 'int64') && !Number.isInteger(value)) {
        errors.push({ path, message: `expected an integer, got ${value}` });
      }
      return;
    case 'boolean':
      if (typeof value !== 'boolean') errors.push({ path, message: `expected a boolean, got ${typeName(value)}` });
      return;
    case 'IntOrString':
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) {
        errors.push({ path, message: `expected an integer or a string, got ${typeName(value)}` });
      }
      return;
    case 'any':
    case 'object':
      return;
  }
  const model = modelClass(type);
  if (!model) {
    errors.push({ path, message: `schema has no type ${type}` });
    return;
  }
  if (typeName(value) !== 'object') {
    errors.push({ path, message: `expected an object (${type}), got ${typeName(value)}` });
    return;
  }
  const obj = value as Record<string, unknown>;
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a]));
  for (const [key, v] of Object.entries(obj)) {
    const attr = attrs.get(key);
    if (!attr) errors.push({ path: `${path}/${key}`, message: `unknown field "${key}" in ${type}` });
    else check(v, attr.type, attr.format, `${path}/${key}`, errors);
  }
  for (const req of requiredFields(type)) {
    const attr = [...attrs.values()].find((a) => a.name === req);
    if (attr && (obj[attr.baseName] === undefined || obj[attr.baseName] === null)) {
      errors.push({ path: `${path}/${attr.baseName}`, message: `missing required field "${attr.baseName}" of ${type}` });
    }
  }
}

/** Validates one object (apiVersion + kind) against its schema; returns every violation. */
export function validateObject(obj: unknown): SchemaError[] {
  if (typeName(obj) !== 'object') return [{ path: '', message: 'not an object' }];
  const { apiVersion, kind } = obj as { apiVersion?: unknown; kind?: unknown };
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return [{ path: '', message: 'apiVersion and kind must be strings' }];
  }
  const name = modelNameFor(apiVersion, kind);
  if (!modelClass(name)) return [{ path: '', message: `no schema for ${apiVersion} ${kind} (${name})` }];
  const errors: SchemaError[] = [];
  check(obj, name, '', '', errors);
  return errors;
}
