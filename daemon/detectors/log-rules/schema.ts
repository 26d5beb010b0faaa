/**
 * The shape of a log rule file (daemon/rules/*.json), validated with zod.
 *
 * Modelled on node-problem-detector's monitor configs (`type`, `reason`,
 * `pattern` over a bounded window of lines), extended with what a finding
 * needs: a catalog category, a severity, a subject, frequency thresholds and
 * self-tests (`examples`).
 */
import { z } from 'zod';
import { CATEGORIES } from '../../core/types.js';
import { CodedError } from '../../errors.js';

/**
 * Where a rule looks: `kmsg` (kernel lines from /dev/kmsg and journald's kernel transport, counted once),
 * `journald:<unit>` (`.service` optional), `journald:@<group>` (every unit of a group in UNIT_GROUPS, e.g. the
 * units that run a kubelet on kubeadm, k3s, RKE2, k0s and MicroK8s nodes), `journald` (every unit), `podLog` (container logs).
 */
const SOURCE = /^(?:kmsg|podLog|journald(?::@?[A-Za-z0-9_.@-]+)?)$/;
const GROUP_NAME = /^[A-Za-z][A-Za-z0-9]*$/;

const examplesSchema = z.strictObject({
  /** Log text the rule must match; a multi-line example holds its lines joined with `\n`. */
  match: z.array(z.string().min(1)).min(1),
  /** Near misses the rule must not match. */
  noMatch: z.array(z.string().min(1)).min(1),
});

const subjectSchema = z.strictObject({
  /** Named groups whose values split findings (added to the finding's detail), e.g. the interface. Defaults to none. */
  detail: z.array(z.string().regex(GROUP_NAME)).optional(),
  /**
   * Start of the finding's detail instead of the rule id ("" for none), so the
   * finding merges with another detector's finding on the same problem
   * (e.g. "kubelet" for the kubelet-health detector). Defaults to the rule id.
   */
  detailPrefix: z.string().regex(/^[A-Za-z0-9:._-]*$/).optional(),
  /** Named group holding a cgroup path (`/kubepods/.../pod<uid>/<container id>`): the finding is about that pod's container. */
  cgroup: z.string().regex(GROUP_NAME).optional(),
  /** Named group with the pod namespace (with `pod`): the finding is about that pod. */
  namespace: z.string().regex(GROUP_NAME).optional(),
  /** Named group with the pod name (with `namespace`), or with `namespace/name` when `namespace` is absent. */
  pod: z.string().regex(GROUP_NAME).optional(),
  /** Named group with the container name (with `pod`). */
  container: z.string().regex(GROUP_NAME).optional(),
  /** Severity when `cgroup`/`pod` is given but the pod cannot be found (the finding then names the node). Defaults to the rule's severity. */
  unresolvedSeverity: z.enum(['info', 'warning', 'critical']).optional(),
});

const thresholdSchema = z.strictObject({
  /** Matches (per subject and detail) needed within `windowSeconds` before anything is reported. */
  count: z.number().int().min(2).max(1000),
  /** Sliding window of the count, in seconds of log time. */
  windowSeconds: z.number().positive().max(7 * 24 * 3600),
});

const citationSchema = z.strictObject({
  /** Upstream repository (`owner/name` on GitHub) whose code writes the message. */
  repo: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be owner/name'),
  /** File in that repository that holds the message. */
  path: z.string().min(1),
  /** The message (format string) as written there. */
  message: z.string().min(1),
  /** Versions or context this citation holds for (e.g. "kernel < 5.14"). Defaults to every supported version. */
  note: z.string().min(1).optional(),
});

/** One rule as written in a rule file. */
export const ruleSchema = z.strictObject({
  /** Stable id (kebab-case), unique over all loaded files; part of the finding's detail. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be kebab-case (a-z, 0-9, -)'),
  /** Problem-catalog category (DESIGN.md). */
  category: z.enum(CATEGORIES),
  severity: z.enum(['info', 'warning', 'critical']),
  /** `temporary`: an event; `permanent`: a condition that holds until cleared, held or rebooted. */
  type: z.enum(['temporary', 'permanent']),
  /** node-problem-detector reason name (UpperCamelCase), kept in the finding's facts. */
  reason: z.string().regex(/^[A-Z][A-Za-z0-9]*$/, 'must be UpperCamelCase'),
  /** Sources the rule applies to (see SOURCE). */
  source: z.array(z.string().regex(SOURCE, 'must be kmsg, podLog, journald or journald:<unit>')).min(1),
  /** Regular expression (JavaScript syntax). With `window` > 1 it must end at the newest line and may span lines joined by `\n`. */
  pattern: z.string().min(1),
  /** Literal strings of which at least one must appear in the newest line before the pattern runs (cheap prefilter). Empty: always run. */
  keywords: z.array(z.string().min(2)),
  /** Match case-insensitively (pattern and keywords). Defaults to false. */
  ignoreCase: z.boolean().optional(),
  /** Lines of the same stream the pattern can span, newest last. Defaults to 1. */
  window: z.number().int().min(1).max(200).optional(),
  /** A line matching this pattern (at any line of the match window) does not count. */
  excludePattern: z.string().min(1).optional(),
  /** Frequency threshold; without it every match counts. */
  threshold: thresholdSchema.optional(),
  /** permanent: a later line matching this (same detail groups) ends the condition. */
  clearPattern: z.string().min(1).optional(),
  /** Keywords of clearPattern. Defaults to none (always run when the rule has a clearPattern). */
  clearKeywords: z.array(z.string().min(2)).optional(),
  /** permanent: the condition ends this long after its last match. Defaults to never (until cleared or the daemon restarts). */
  holdSeconds: z.number().positive().optional(),
  /** permanent: the condition is reported only once it has held this long without being cleared. Defaults to 0. */
  pendingSeconds: z.number().min(0).optional(),
  /** Lines from the first N seconds after boot are ignored (interface bring-up, fsck). Defaults to 0. */
  skipAfterBootSeconds: z.number().min(0).optional(),
  /** Finding title; `{group}` inserts a named group of the latest match, `{count}` the occurrences, `{unit}` the journald unit. */
  title: z.string().min(1),
  /** What was seen, in plain words; same placeholders as title. */
  message: z.string().min(1),
  subject: subjectSchema.optional(),
  examples: examplesSchema,
  /** Why the rule is as it is (category choice, thresholds), for people reading the file. Defaults to none. */
  comment: z.string().min(1).optional(),
  /**
   * Where the matched messages come from upstream. Every shipped rule has at least one (test/log-rules.test.ts);
   * site rules may match their own programs' lines and leave it out. Defaults to none.
   */
  citations: z.array(citationSchema).min(1).optional(),
});

/** One rule as written in a rule file. */
export type LogRuleSpec = z.infer<typeof ruleSchema>;

/** A rule file: `{ "description": "...", "rules": [...] }`. */
export const ruleFileSchema = z.strictObject({
  /** What the file covers. */
  description: z.string().optional(),
  rules: z.array(z.unknown()).min(1),
});

/** A rule file is missing, not JSON, or a rule in it is invalid. */
export class RuleFileError extends CodedError {
  /** Stable error code. */
  readonly code = 'RULE_FILE_INVALID';
  constructor(
    /** The file (path as given). */
    readonly file: string,
    /** Id (or `#<index>`) of the offending rule, when one is. */
    readonly ruleId: string | undefined,
    /** Offending field path (`examples.match.2`), when known. */
    readonly field: string | undefined,
    detail: string,
  ) {
    super(`${file}${ruleId ? `: rule ${ruleId}` : ''}${field ? `: ${field}` : ''}: ${detail}`);
  }
}
