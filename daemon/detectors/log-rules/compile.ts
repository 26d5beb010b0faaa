/**
 * Loading and compiling rule files: parse → validate → cross-field checks →
 * compile patterns → freeze, once at start-up. A bad file stops start-up with
 * one line naming the file, the rule and the field.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LogRuleSpec, RuleFileError, ruleFileSchema, ruleSchema } from './schema.js';

/** A validated rule with its patterns compiled. */
export interface CompiledRule {
  readonly spec: Readonly<LogRuleSpec>;
  /** The file the rule came from. */
  readonly file: string;
  /** The pattern; for window > 1 anchored to end at the newest line. */
  readonly re: RegExp;
  readonly exclude: RegExp | undefined;
  readonly clear: RegExp | undefined;
  /** Prefilter literals (lower-cased for ignoreCase rules). */
  readonly keywords: readonly string[];
  readonly clearKeywords: readonly string[];
  readonly window: number;
  /** Applies to kernel lines (kmsg and journald unit `kernel`). */
  readonly kernel: boolean;
  /** Applies to container logs. */
  readonly podLog: boolean;
  /** Applies to every journald unit. */
  readonly journaldAll: boolean;
  /** Normalised journald units it applies to. */
  readonly units: ReadonlySet<string>;
}

/**
 * Unit groups a rule names with `journald:@<group>`: the systemd units that run
 * one component on each supported distribution, so a kubelet rule is written
 * once and applies on kubeadm, k3s, RKE2, k0s and MicroK8s nodes alike.
 * k3s, RKE2 and k0s run the kubelet (and k0s its containerd) inside their own
 * unit; MicroK8s runs the kubelet in `kubelite` and containerd as its own snap service.
 * `k3s-containerd`, `rke2-containerd` and `rke2-kubelet` are the log files k3s and
 * RKE2 write for their embedded containerd and kubelet (journald collector).
 */
export const UNIT_GROUPS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  kubelet: ['kubelet', 'k3s', 'k3s-agent', 'rke2-server', 'rke2-agent', 'rke2-kubelet', 'k0sworker', 'k0scontroller', 'snap.microk8s.daemon-kubelite'],
  containerd: ['containerd', 'k3s', 'k3s-agent', 'k3s-containerd', 'rke2-server', 'rke2-agent', 'rke2-containerd', 'k0sworker', 'k0scontroller', 'snap.microk8s.daemon-containerd'],
});

const BUILTIN_PLACEHOLDERS = new Set(['count', 'unit']);

/** Normalises a journald unit for matching: `kubelet.service` → `kubelet`, `init.scope` → `systemd`. */
export function normalizeUnit(unit: string): string {
  if (unit === 'init.scope') return 'systemd';
  return unit.endsWith('.service') ? unit.slice(0, -'.service'.length) : unit;
}

function namedGroups(source: string): Set<string> {
  const out = new Set<string>();
  for (const m of source.matchAll(/\(\?<([A-Za-z][A-Za-z0-9]*)>/g)) out.add(m[1]!);
  return out;
}

function placeholders(template: string): string[] {
  return [...template.matchAll(/\{([A-Za-z][A-Za-z0-9]*)\}/g)].map((m) => m[1]!);
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/**
 * Validates and compiles one rule.
 * @param file the file name, for errors
 * @param raw the rule as parsed from JSON
 * @param index position in the file, for errors when the id is missing
 */
export function compileRule(file: string, raw: unknown, index: number): CompiledRule {
  const idOf = (): string => {
    const id = (raw as { id?: unknown } | null)?.id;
    return typeof id === 'string' ? id : `#${index}`;
  };
  const parsed = ruleSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    let field = fieldPath(issue.path);
    if (issue.code === 'unrecognized_keys') field = [field, ...issue.keys].filter(Boolean).join('.');
    throw new RuleFileError(file, idOf(), field || undefined, issue.message);
  }
  const spec = parsed.data;
  const fail = (field: string, detail: string): never => {
    throw new RuleFileError(file, spec.id, field, detail);
  };
  const flags = spec.ignoreCase ? 'i' : '';
  const window = spec.window ?? 1;
  const compile = (field: string, source: string, anchorEnd: boolean): RegExp => {
    try {
      return new RegExp(anchorEnd ? `(?:${source})$` : source, flags);
    } catch (err) {
      return fail(field, `invalid regular expression: ${(err as Error).message}`);
    }
  };
  const re = compile('pattern', spec.pattern, window > 1);
  if (re.test('')) fail('pattern', 'matches the empty string');
  const exclude = spec.excludePattern === undefined ? undefined : compile('excludePattern', spec.excludePattern, false);
  const clear = spec.clearPattern === undefined ? undefined : compile('clearPattern', spec.clearPattern, false);

  const groups = namedGroups(spec.pattern);
  const subject = spec.subject ?? {};
  for (const [key, value] of Object.entries(subject)) {
    const names = key === 'detail' ? (value as string[]) : key === 'cgroup' || key === 'namespace' || key === 'pod' || key === 'container' ? [value as string] : [];
    for (const name of names) if (!groups.has(name)) fail(`subject.${key}`, `named group "${name}" is not in the pattern`);
  }
  if (subject.namespace && !subject.pod) fail('subject.namespace', 'needs subject.pod');
  if (subject.container && !subject.pod) fail('subject.container', 'needs subject.pod');
  if (subject.unresolvedSeverity && !subject.cgroup && !subject.pod) fail('subject.unresolvedSeverity', 'needs subject.cgroup or subject.pod');
  for (const field of ['title', 'message'] as const) {
    for (const name of placeholders(spec[field])) {
      if (!groups.has(name) && !BUILTIN_PLACEHOLDERS.has(name)) fail(field, `placeholder {${name}} is neither a named group nor one of ${[...BUILTIN_PLACEHOLDERS].join(', ')}`);
    }
  }
  if (spec.type === 'temporary') {
    for (const f of ['clearPattern', 'holdSeconds', 'pendingSeconds'] as const) {
      if (spec[f] !== undefined) fail(f, 'only permanent rules hold a condition');
    }
  }
  if (clear) {
    const clearGroups = namedGroups(spec.clearPattern!);
    for (const name of subject.detail ?? []) {
      if (!clearGroups.has(name)) fail('clearPattern', `must capture the detail group "${name}" to clear the right condition`);
    }
  }
  if (spec.clearKeywords && !clear) fail('clearKeywords', 'needs clearPattern');

  const units = new Set<string>();
  let kernel = false;
  let podLog = false;
  let journaldAll = false;
  for (const s of spec.source) {
    if (s === 'kmsg' || s === 'journald:kernel') kernel = true;
    else if (s === 'podLog') podLog = true;
    else if (s === 'journald') journaldAll = true;
    else if (s.startsWith('journald:@')) {
      const group = UNIT_GROUPS[s.slice('journald:@'.length)];
      if (!group) fail('source', `unknown unit group ${JSON.stringify(s.slice('journald:'.length))} (known: ${Object.keys(UNIT_GROUPS).map((g) => `@${g}`).join(', ')})`);
      for (const u of group ?? []) units.add(u);
    } else units.add(normalizeUnit(s.slice('journald:'.length)));
  }
  const lower = (k: string): string => (spec.ignoreCase ? k.toLowerCase() : k);
  return Object.freeze({
    spec: Object.freeze(spec),
    file,
    re,
    exclude,
    clear,
    keywords: Object.freeze(spec.keywords.map(lower)),
    clearKeywords: Object.freeze((spec.clearKeywords ?? []).map(lower)),
    window,
    kernel,
    podLog,
    journaldAll,
    units,
  });
}

/**
 * Validates and compiles the rules of one parsed rule file.
 * @param file the file name, for errors
 */
export function compileRuleFile(file: string, json: unknown): CompiledRule[] {
  const parsed = ruleFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RuleFileError(file, undefined, fieldPath(issue.path) || undefined, issue.message);
  }
  const rules = parsed.data.rules.map((r, i) => compileRule(file, r, i));
  checkUniqueIds(rules);
  return rules;
}

/** Reads and compiles one rule file. */
export function loadRuleFile(path: string): CompiledRule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RuleFileError(path, undefined, undefined, `cannot read: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new RuleFileError(path, undefined, undefined, `not valid JSON: ${(err as Error).message}`);
  }
  return compileRuleFile(path, json);
}

/** Throws when two rules share an id. */
export function checkUniqueIds(rules: readonly CompiledRule[]): void {
  const seen = new Map<string, string>();
  for (const r of rules) {
    const other = seen.get(r.spec.id);
    if (other !== undefined) throw new RuleFileError(r.file, r.spec.id, 'id', `duplicate id (also in ${other})`);
    seen.set(r.spec.id, r.file);
  }
}

/** Reads and compiles every `*.json` rule file of a folder, in file-name order. */
export function loadRuleFiles(dir: string): CompiledRule[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch (err) {
    throw new RuleFileError(dir, undefined, undefined, `cannot list rule folder: ${(err as Error).message}`);
  }
  if (names.length === 0) throw new RuleFileError(dir, undefined, undefined, 'no *.json rule files');
  const rules = names.flatMap((n) => loadRuleFile(join(dir, n)));
  checkUniqueIds(rules);
  return rules;
}
