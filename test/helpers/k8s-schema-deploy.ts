/**
 * Helpers of the deployment tests: render kustomize trees with the real
 * `kubectl kustomize`, and read the Dockerfile and .dockerignore the way
 * Docker does (continuation lines, comments, stages, allow-lists).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** The repository root. */
export const repoRoot = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

/** A rendered Kubernetes object (loosely typed: tests walk it as data). */
// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is walked as plain data.
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

/** kubectl's client and embedded kustomize versions; throws a clear error when kubectl is missing. */
export function kubectlVersions(): { client: string; kustomize: string } {
  let out: string;
  try {
    out = execFileSync('kubectl', ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  } catch (err) {
    throw new Error(`kubectl is needed to render daemonset/ (kubectl kustomize): ${(err as Error).message}`);
  }
  const v = JSON.parse(out) as { clientVersion: { gitVersion: string }; kustomizeVersion?: string };
  return { client: v.clientVersion.gitVersion, kustomize: v.kustomizeVersion ?? '' };
}

/** Renders a kustomization folder (relative to the repository) into objects. */
export function render(dir: string): K8sObject[] {
  const out = execFileSync('kubectl', ['kustomize', join(repoRoot, dir)], { encoding: 'utf8', maxBuffer: 16 << 20 });
  return parseYaml(out);
}

/**
 * Renders an overlay with extra components, the way an operator composes them:
 * a throw-away kustomization that references the repository folders.
 */
export function renderWith(resources: string[], components: string[], images: string[] = []): K8sObject[] {
  const dir = mkdtempSync(join(tmpdir(), 'nodesage-kustomize-'));
  try {
    const rel = (p: string) => relative(dir, join(repoRoot, p));
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        ...resources.map((r) => `  - ${rel(r)}`),
        'components:',
        ...components.map((c) => `  - ${rel(c)}`),
        ...(images.length > 0 ? ['images:', ...images] : []),
        '',
      ].join('\n'),
    );
    const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 << 20 });
    return parseYaml(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseYaml(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0]!.message}`);
    return d.toJS() as K8sObject;
  });
}

/** One Dockerfile instruction, continuation lines joined and comment lines removed. */
export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY... */
  keyword: string;
  /** The rest of the instruction. */
  args: string;
  /** Flags such as --from=build (COPY) or --build-arg (none here). */
  flags: Record<string, string>;
}

/** One build stage. */
export interface Stage {
  /** The FROM argument (image or stage, unexpanded). */
  from: string;
  /** The AS name, if any. */
  name: string | null;
  instructions: Instruction[];
}

/** Parses a Dockerfile the way BuildKit reads it: comments dropped, `\` joins lines. */
export function parseDockerfile(text: string): { globalArgs: Map<string, string>; stages: Stage[] } {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimStart();
    if (line.startsWith('#')) continue;
    if (current === '' && line.trim() === '') continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim()) logical.push(current.trim());
    current = '';
  }
  if (current.trim()) logical.push(current.trim());

  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\S+)\s*(.*)$/s.exec(l)!;
    const keyword = m[1]!.toUpperCase();
    let rest = m[2]!;
    const flags: Record<string, string> = {};
    while (keyword !== 'RUN' && /^--[\w-]+(=\S+)?\s/.test(rest)) {
      const f = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest)!;
      flags[f[1]!] = f[2] ?? 'true';
      rest = rest.slice(f[0].length);
    }
    if (keyword === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest.trim())!;
      stages.push({ from: fm[1]!, name: fm[2] ?? null, instructions: [] });
      continue;
    }
    const inst: Instruction = { keyword, args: rest, flags };
    const stage = stages[stages.length - 1];
    if (stage) stage.instructions.push(inst);
    else if (keyword === 'ARG') {
      const a = /^(\w+)(?:=(.*))?$/.exec(rest.trim())!;
      globalArgs.set(a[1]!, a[2] ?? '');
    }
  }
  return { globalArgs, stages };
}

/** The arguments of an exec-form instruction (`["a", "b"]`). */
export function execForm(inst: Instruction): string[] {
  return JSON.parse(inst.args) as string[];
}

/**
 * Whether .dockerignore excludes a path from the build context. Implements the
 * rules Docker applies: patterns in order, the last match wins, `!` re-includes,
 * `*` stays within one path segment, `**` spans segments, and a pattern that
 * matches a folder matches everything under it.
 */
export function dockerignoreExcludes(patterns: string[], path: string): boolean {
  let excluded = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\/+/, '').replace(/\/+$/, '');
    if (!pattern) continue;
    const re = new RegExp(
      `^${pattern
        .split('/')
        .map((seg) =>
          seg === '**'
            ? '(?:.*)'
            : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'),
        )
        .join('/')
        .replace(/\(\?:\.\*\)\//g, '(?:.*/)?')}(?:/.*)?$`,
    );
    if (re.test(path)) excluded = !negate;
  }
  return excluded;
}

/** The patterns of a .dockerignore file (comments and blank lines dropped). */
export function readDockerignore(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}
