/**
 * The public contract: the JSON the API, the CLI and `analyze --format json`
 * print, and what a diagnoser is given. Each shape is one zod schema; its
 * TypeScript type is inferred from it and every API response schema is
 * derived from it (`responseSchema`), so the type, the served body and the
 * OpenAPI document cannot drift apart. The shapes are those of DESIGN.md
 * (Finding, Diagnosis, Status, SourceStatus) and the README's HTTP API section.
 *
 * Cost: only the API server imports this module at run time (everything else
 * imports its types, which are erased, and the word lists of vocabulary.ts).
 * zod is loaded at start by the config anyway; building these schemas costs
 * about 0.7 MiB of heap and 10 ms, and the JSON schemas, computed once when the
 * API is built, 0.3 MiB and 5 ms (measured on a 2-core node, Node 24).
 */
import { z } from 'zod';
import { CATEGORIES, SEVERITY_VALUES } from './vocabulary.js';

/** RFC3339 timestamp string (UTC, milliseconds where known). */
export const TimestampSchema = z.string().describe('RFC3339 time');
/** RFC3339 timestamp string (UTC, milliseconds where known). */
export type Timestamp = z.infer<typeof TimestampSchema>;

/** How bad a finding is. `info` findings are kept but never page anyone. */
export const SeveritySchema = z.enum(SEVERITY_VALUES);
/** How bad a finding is. `info` findings are kept but never page anyone. */
export type Severity = z.infer<typeof SeveritySchema>;

/** One problem-catalog category id. */
export const CategorySchema = z.enum(CATEGORIES);
/** One problem-catalog category id. */
export type Category = z.infer<typeof CategorySchema>;

/** What a finding is about. */
export const SubjectSchema = z.object({
  kind: z.enum(['Node', 'Pod', 'Container']),
  name: z.string().describe('node name, or pod name for Pod and Container subjects'),
  namespace: z.string().optional(),
  container: z.string().optional(),
});
/** What a finding is about. */
export type Subject = z.infer<typeof SubjectSchema>;

/** Where a piece of evidence came from. */
export const EvidenceSourceSchema = z.enum(['podStatus', 'event', 'podLog', 'journald', 'kmsg', 'kubelet', 'host']);
/** Where a piece of evidence came from. */
export type EvidenceSource = z.infer<typeof EvidenceSourceSchema>;

/** One redacted excerpt that supports a finding. */
export const EvidenceSchema = z.object({ source: EvidenceSourceSchema, at: TimestampSchema, text: z.string() });
/** One redacted excerpt that supports a finding. */
export type Evidence = z.infer<typeof EvidenceSchema>;

/** Output of the LLM or the rule hint for one finding. */
export const DiagnosisSchema = z.object({
  summary: z.string(),
  probableCause: z.string(),
  nextSteps: z.array(z.string()),
  commands: z.array(z.string()),
  confidence: z.enum(['low', 'medium', 'high']),
  diagnoser: z.string().describe('llm:<model id> or rule-hint'),
  tokens: z.object({ prompt: z.number().int(), completion: z.number().int() }),
  latencyMs: z.number(),
  evidenceRefs: z.array(z.number().int()).optional().describe("indexes into the finding's evidence that the diagnosis cites"),
  fallback: z
    .string()
    .optional()
    .describe('set when the LLM gave no usable answer and the rule hint stands in: truncated | unparseable | invalid | timeout | error'),
});
/** Output of the LLM or the rule hint for one finding. */
export type Diagnosis = z.infer<typeof DiagnosisSchema>;

/** A problem as the API and `analyze --format json` print it. */
export const FindingSchema = z.object({
  id: z.string().describe('stable fingerprint of category + subject (+ detail)'),
  category: CategorySchema,
  severity: SeveritySchema,
  subject: SubjectSchema,
  title: z.string(),
  message: z.string(),
  evidence: z.array(EvidenceSchema),
  firstSeen: TimestampSchema,
  lastSeen: TimestampSchema,
  count: z.number().int(),
  status: z.enum(['open', 'resolved']),
  resolvedAt: TimestampSchema.nullable().optional(),
  causes: z.array(z.string()).optional().describe('ids of the findings this one is a consequence of'),
  rootCause: z.boolean().optional().describe('true when no other open finding explains this one'),
  diagnosis: DiagnosisSchema.nullable(),
});
/** A problem as the API and `analyze --format json` print it. */
export type Finding = z.infer<typeof FindingSchema>;

/** A flat record of string, number or boolean values (a finding's facts, a source's detail). */
const FlatRecordSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

/** Structured facts a detector kept on a finding (exit code, reason, mount...): for correlation and diagnosis, not part of the public Finding. */
export const FindingFactsSchema = FlatRecordSchema;
/** Structured facts a detector kept on a finding (exit code, reason, mount...): for correlation and diagnosis, not part of the public Finding. */
export type FindingFacts = z.infer<typeof FindingFactsSchema>;

/**
 * What a diagnoser is given: the finding plus its detector's facts (absent or
 * null when the detector kept none). The daemon and `analyze` both build it
 * with `toDiagnosisInput`, so a diagnosis reads the same facts wherever it runs.
 */
export const DiagnosisInputSchema = FindingSchema.extend({
  facts: FindingFactsSchema.nullable().optional().describe("the detector's facts (exit code, reason, mount...); defaults to none"),
});
/** What a diagnoser is given: the finding plus its detector's facts. */
export type DiagnosisInput = z.infer<typeof DiagnosisInputSchema>;

/** Names of the sources shown in /v1/status. */
export const SourceNameSchema = z.enum(['kubelet', 'kube-api', 'pod-logs', 'journald', 'kmsg', 'host']);
/** Names of the sources shown in /v1/status. */
export type SourceName = z.infer<typeof SourceNameSchema>;

/** Health of one source, as /v1/status shows it. */
export const SourceStatusSchema = z.object({
  name: SourceNameSchema,
  state: z.enum(['healthy', 'stale', 'failing', 'disabled']),
  signals: z.number().int(),
  lastSignalAt: TimestampSchema.nullable(),
  lastError: z.string().nullable(),
  detail: FlatRecordSchema.optional()
    .describe('extra facts (dropped lines, gaps, restarts, backend...): string, number or boolean values'),
});
/** Health of one source, as /v1/status shows it. */
export type SourceStatus = z.infer<typeof SourceStatusSchema>;

/** A LoRA adapter as /v1/status shows it under `model.loras`. */
export const LoraStatusSchema = z.object({
  path: z.string(),
  scale: z.number(),
  sha256: z.string().nullable().describe('the digest it was checked against; null when none is known'),
  checked: z.boolean().describe('true once it passed the checks (file, kind, architecture, digest)'),
  applied: z.boolean().describe('true while it is applied to the loaded context'),
  sizeBytes: z.number().int().nullable(),
});
/** A LoRA adapter as /v1/status shows it under `model.loras`. */
export type LoraStatus = z.infer<typeof LoraStatusSchema>;

/** The `model` part of /v1/status: the local model, the site backend, or none. */
export const ModelStatusSchema = z.object({
  state: z.enum(['none', 'loading', 'ready', 'refused', 'failed']),
  id: z.string().nullable(),
  reason: z.string().nullable(),
  backend: z.string().nullable().optional().describe('cpu, cuda, vulkan, metal, or site'),
  threads: z.number().int().nullable().optional(),
  sha256: z.string().nullable().optional().describe('digest the model file is checked against before loading'),
  sha256Source: z.enum(['config', 'catalog', 'sidecar']).nullable().optional().describe('where that digest came from'),
  loras: z.array(LoraStatusSchema).optional().describe('LoRA adapters, in the order they are applied'),
  endpoint: z.string().optional().describe('site backend only: where diagnosis prompts go'),
  dataLeavesNode: z.boolean().optional().describe('site backend only: true, evidence (redacted) leaves the node'),
  notice: z.string().optional(),
  requests: z.number().int().optional().describe('site backend only: requests sent since start'),
  failures: z.number().int().optional().describe('site backend only: requests failed since start'),
  lastRequestAt: TimestampSchema.nullable().optional(),
});
/** The `model` part of /v1/status. */
export type ModelStatus = z.infer<typeof ModelStatusSchema>;

/** The agent as `GET /v1/status` and `nodesage status --json` show it (DESIGN.md). */
export const StatusSchema = z.object({
  mode: z.enum(['in-cluster', 'kubeconfig', 'host', 'bundle']),
  nodeName: z.string(),
  version: z.string(),
  startedAt: TimestampSchema,
  sources: z.array(SourceStatusSchema),
  model: ModelStatusSchema,
  store: z.object({
    path: z.string(),
    sizeBytes: z.number().int(),
    recoveredFrom: z.string().nullable(),
    writeFailure: z
      .object({
        code: z.string().nullable().describe('SQLite error code, e.g. SQLITE_FULL'),
        message: z.string(),
        since: TimestampSchema.describe('the first failed commit of this run of failures'),
        cyclesKept: z.number().int().describe('detection cycles held in memory (folded) until the store writes again'),
      })
      .nullable()
      .describe('null while commits succeed; set while detection cycles cannot be stored (disk full, read-only, I/O error)'),
  }),
  rulesOnly: z.boolean().describe('true when no model is serving diagnoses: findings still come from the detectors'),
});
/** The agent as `GET /v1/status` and `nodesage status --json` show it. */
export type Status = z.infer<typeof StatusSchema>;

/** The API's one error shape: `{"error": {"code", "message"}}` with a stable code. */
export const ApiErrorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
/** The API's one error shape. */
export type ApiError = z.infer<typeof ApiErrorSchema>;

/** The body of `GET /healthz`. */
export const HealthSchema = z.object({ status: z.literal('ok') });

/** The 200 body of `GET /readyz` (503 is an {@link ApiErrorSchema} body). */
export const ReadySchema = z.object({ status: z.literal('ready') });

/** A page of `GET /v1/findings`: pass `nextCursor` back as `cursor` for the next one. */
export const FindingPageSchema = z.object({ items: z.array(FindingSchema), nextCursor: z.string().nullable() });
/** A page of `GET /v1/findings`. */
export type FindingPage = z.infer<typeof FindingPageSchema>;

/** One entry of `GET /v1/timeline`: a finding opened, resolved, reopened or diagnosed. */
export const TimelineEventSchema = z.object({
  at: TimestampSchema,
  kind: z.enum(['opened', 'resolved', 'reopened', 'diagnosed']),
  detail: z.string().nullable(),
  finding: FindingSchema.pick({ id: true, category: true, severity: true, subject: true, title: true, status: true }),
});
/** The body of `GET /v1/timeline`, newest first. */
export const TimelineSchema = z.object({ items: z.array(TimelineEventSchema) });

/** The body of `GET /v1/metrics/history`: one line per label (filesystem), points oldest first. */
export const MetricsHistorySchema = z.object({
  series: z.string(),
  unit: z.string(),
  help: z.string(),
  resolutionSeconds: z.number().int(),
  lines: z.array(
    z.object({
      label: z.string(),
      points: z.array(z.object({ at: TimestampSchema, mean: z.number(), max: z.number() })),
    }),
  ),
});

/** The 201 body of `POST /v1/findings/:id/feedback`. */
export const FeedbackSchema = z.object({
  id: z.number().int(),
  findingId: z.string(),
  at: TimestampSchema,
  helpful: z.boolean(),
  note: z.string().nullable(),
});

/** A JSON schema as fastify and the OpenAPI document take it. */
export type JsonSchema = Record<string, unknown>;

/**
 * Shapes zod's JSON schema for fast-json-stringify without changing what it
 * serialises: `anyOf: [X, {type: "null"}]` becomes X with `"null"` added to
 * its type (a typeof check instead of running a validator on every value to
 * pick the branch), and an open record (an object with `additionalProperties`
 * and no `properties`, such as a source's `detail`) loses its value schema,
 * which fast-json-stringify then hands to JSON.stringify whole instead of
 * walking it key by key (measured: /v1/status 3.7 µs per body typed, 2.5 µs
 * untyped, 2.1 µs with no schema at all). The zod schema still types the
 * values, and tests validate served bodies against it.
 */
function forSerializer(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(forSerializer);
  if (node === null || typeof node !== 'object') return node;
  const src = node as JsonSchema;
  const anyOf = src.anyOf as JsonSchema[] | undefined;
  if (anyOf?.length === 2) {
    const nonNull = anyOf.filter((s) => !(s.type === 'null' && Object.keys(s).length === 1));
    const only = nonNull[0];
    if (nonNull.length === 1 && only && typeof only.type === 'string') {
      const { anyOf: _anyOf, ...rest } = src;
      return forSerializer({ ...only, ...rest, type: [only.type, 'null'] });
    }
  }
  if (src.type === 'object' && src.properties === undefined && typeof src.additionalProperties === 'object') {
    return src.description === undefined ? {} : { description: src.description };
  }
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(src)) out[k] = forSerializer(v);
  return out;
}

const cache = new WeakMap<z.ZodType, JsonSchema>();

/**
 * The JSON schema of a contract schema for a fastify response (and so for the
 * OpenAPI document): what the schema outputs, draft-07, without `$schema`,
 * shaped for the serializer (see forSerializer). Computed once per schema.
 */
export function responseSchema(schema: z.ZodType): JsonSchema {
  let out = cache.get(schema);
  if (!out) {
    const { $schema: _meta, ...json } = z.toJSONSchema(schema, { io: 'output', target: 'draft-07' }) as JsonSchema;
    out = forSerializer(json) as JsonSchema;
    cache.set(schema, out);
  }
  return out;
}
