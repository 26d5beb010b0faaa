/**
 * The Dockerfile read as Docker reads it: what it copies exists (in the build
 * context, after .dockerignore, or as an output of the build stage), what it
 * runs is what the build produces, and each variant keeps the llama.cpp
 * binaries it needs. No Docker engine is needed; runtime-image.test.ts runs the
 * stage's own scripts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  dockerignoreExcludes,
  execForm,
  type Instruction,
  parseDockerfile,
  readDockerignore,
  repoRoot,
  type Stage,
} from '../helpers/k8s-schema-deploy.js';

const dockerfile = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
const ignore = readDockerignore(join(repoRoot, '.dockerignore'));
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> };
const tsconfig = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };

const stage = (name: string): Stage => {
  const s = dockerfile.stages.find((st) => st.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
const all = (s: Stage, keyword: string): Instruction[] => s.instructions.filter((i) => i.keyword === keyword);
const last = (s: Stage, keyword: string): Instruction => {
  const found = all(s, keyword);
  expect(found.length, `${keyword} in stage ${s.name}`).toBeGreaterThan(0);
  return found[found.length - 1]!;
};
const arg = (name: string) => dockerfile.globalArgs.get(name) ?? '';
/** How the Dockerfile refers to a build arg: $ and the name in braces. */
const ref = (name: string) => `$${'{'}${name}}`;
const build = stage('build');
const runtime = stage('runtime');
const buildRuns = all(build, 'RUN').map((r) => r.args).join('\n');

// The variant switch of the build stage, as written in its shell `case`.
const variantScript = all(build, 'RUN').find((r) => r.args.includes('@node-llama-cpp'))!.args;

describe('stages and base images', () => {
  it('builds on Node 24 Debian and runs on a slim Debian (glibc >= 2.34, not Alpine)', () => {
    expect(build.from).toBe(ref('NODE_IMAGE'));
    expect(arg('NODE_IMAGE')).toMatch(/^node:24-(bookworm|trixie)$/);
    expect(arg('DEBIAN_IMAGE')).toMatch(/^debian:(bookworm|trixie)-slim$/);
    // Ubuntu 22.04 has glibc 2.35, 24.04 2.39; CUDA "runtime" images carry libcudart and libcublas.
    expect(arg('CUDA_IMAGE')).toMatch(/^nvidia\/cuda:\d+\.\d+\.\d+-runtime-ubuntu(22|24)\.04$/);
    for (const s of dockerfile.stages) expect(s.from).not.toMatch(/alpine/);
  });

  it('the runtime stage is picked by VARIANT, defaulting to cpu, with a base for every accepted variant', () => {
    expect(arg('VARIANT')).toBe('cpu');
    expect(runtime.from).toBe(`base-${ref('VARIANT')}`);
    const accepted = [...variantScript.matchAll(/\s(\w+)\) keep=/g)].map((m) => m[1]);
    expect(accepted.sort()).toEqual(['cpu', 'cuda', 'vulkan']);
    for (const v of accepted) expect(dockerfile.stages.some((s) => s.name === `base-${v}`), `stage base-${v}`).toBe(true);
    expect(stage('base-cpu').from).toBe(ref('DEBIAN_IMAGE'));
    expect(stage('base-vulkan').from).toBe(ref('DEBIAN_IMAGE'));
    expect(stage('base-cuda').from).toBe(ref('CUDA_IMAGE'));
  });

  it('each variant keeps llama.cpp packages the lock file installs', () => {
    const keeps = [...variantScript.matchAll(/(\w+)\) keep="([^"]+)"/g)].map((m) => [m[1]!, m[2]!] as const);
    const installed = Object.keys(lock.packages).filter((p) => p.startsWith('node_modules/@node-llama-cpp/'));
    for (const [variant, keep] of keeps) {
      for (const name of keep.split(' ')) {
        const x64 = name.replace('$arch', 'x64');
        expect(installed, `${variant}: @node-llama-cpp/${x64}`).toContain(`node_modules/@node-llama-cpp/${x64}`);
      }
    }
    // The GPU variants keep the CPU binaries to fall back to.
    expect(Object.fromEntries(keeps)).toEqual({
      cpu: 'linux-$arch',
      cuda: 'linux-$arch linux-$arch-cuda',
      vulkan: 'linux-$arch linux-$arch-vulkan',
    });
    expect(installed).toContain('node_modules/@node-llama-cpp/linux-x64-cuda-ext');
  });
});

describe('what the image copies exists', () => {
  it('build-context sources exist and are not excluded by .dockerignore', () => {
    const contextCopies = dockerfile.stages.flatMap((s) => all(s, 'COPY').filter((c) => !c.flags.from));
    expect(contextCopies.length).toBeGreaterThan(0);
    for (const c of contextCopies) {
      const parts = c.args.trim().split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        expect(existsSync(join(repoRoot, src)), `COPY ${src}`).toBe(true);
        if (src !== '.') expect(dockerignoreExcludes(ignore, src), `${src} excluded by .dockerignore`).toBe(false);
      }
    }
  });

  it('.dockerignore keeps sources in and state, builds, weights and tests out', () => {
    for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'daemon/cli.ts', 'daemon/core/types.ts', 'daemon/rules/kernel.json', 'models/catalog.json']) {
      expect(dockerignoreExcludes(ignore, p), p).toBe(false);
    }
    for (const p of ['node_modules/yaml/index.js', 'dist/daemon/cli.js', '.git/HEAD', '.nodesage/nodesage.db', 'test/config.test.ts', 'models/qwen.gguf', 'daemon/x.gguf', 'Dockerfile', '.ci/run']) {
      expect(dockerignoreExcludes(ignore, p), p).toBe(true);
    }
  });

  it('everything the runtime stage takes from the build stage is produced there', () => {
    const fromBuild = all(runtime, 'COPY').filter((c) => c.flags.from === 'build');
    const workdir = last(build, 'WORKDIR').args.trim();
    expect(workdir).toBe('/src');
    const produced = new Map<string, string>([
      ['/usr/local/bin/node', 'the node image'],
      [`${workdir}/package.json`, 'COPY package.json'],
      [`${workdir}/node_modules`, 'npm ci'],
      [`${workdir}/${tsconfig.compilerOptions.outDir}`, 'npm run build (tsc outDir)'],
    ]);
    // Optional source folders are created in the build stage so that the copy never fails.
    const mkdirs = /mkdir -p ([^&;\n]+)/.exec(buildRuns)?.[1]?.trim().split(/\s+/) ?? [];
    for (const d of mkdirs) produced.set(`${workdir}/${d}`, 'mkdir -p');
    for (const c of fromBuild) {
      const [src] = c.args.trim().split(/\s+/);
      expect(produced.has(src!), `COPY --from=build ${src}`).toBe(true);
    }
    expect(fromBuild.map((c) => c.args.trim().split(/\s+/)[0]).sort()).toEqual(
      ['/usr/local/bin/node', '/src/package.json', '/src/node_modules', '/src/dist', '/src/daemon/rules', '/src/models'].sort(),
    );
    expect(buildRuns).toMatch(/npm run build/);
    expect(buildRuns).toMatch(/npm prune --omit=dev/);
  });

  it('never runs install scripts or downloads at build time', () => {
    // npm commands (at the start of a shell command, not inside a message).
    const npmCommands = [...buildRuns.matchAll(/(?:^|&&|\|\||;|\{)\s*(npm (?:ci|install|prune)\b[^;|&}]*)/gm)].map((m) => m[1]!);
    expect(npmCommands.length).toBe(3);
    for (const c of npmCommands) expect(c, c).toMatch(/--ignore-scripts/);
    const env = all(build, 'ENV').map((e) => e.args).join(' ');
    expect(env).toMatch(/NODE_LLAMA_CPP_SKIP_DOWNLOAD=true/);
    // The runtime has node but no npm; nothing is installed there from the npm registry.
    for (const r of all(runtime, 'RUN')) expect(r.args).not.toMatch(/\bnpm\b|\bnpx\b|curl|wget/);
  });
});

describe('what the image runs is what the build produces', () => {
  it('tini is PID 1 and starts the CLI that tsc emits from daemon/cli.ts', () => {
    const entrypoint = execForm(last(runtime, 'ENTRYPOINT'));
    expect(entrypoint.slice(0, 2)).toEqual(['/usr/bin/tini', '--']);
    const runtimeRuns = all(runtime, 'RUN').map((r) => r.args).join('\n');
    expect(runtimeRuns).toMatch(/apt-get install -y --no-install-recommends [^&]*\btini\b/);
    expect(runtimeRuns).toMatch(/apt-get install -y --no-install-recommends [^&]*\bsystemd\b/);
    expect(runtimeRuns).toMatch(/journalctl --version/);
    expect(entrypoint[2]).toBe('node');
    // Node's own flags (V8 memory settings; test/bench/footprint.ts runs with the same) come before the CLI,
    // and this Node accepts them (an unknown flag stops node before the agent starts).
    const args = entrypoint.slice(3);
    const flags = args.slice(0, args.findIndex((a) => !a.startsWith('--')));
    for (const f of flags) expect(f).toMatch(/^--[a-z][a-z-]*(=\S+)?$/);
    expect(() => execFileSync(process.execPath, [...flags, '-e', '0'], { stdio: 'pipe' })).not.toThrow();
    const appDir = last(runtime, 'WORKDIR').args.trim();
    const cli = args[flags.length]!;
    expect(cli).toBe(`${appDir}/${pkg.bin.nodesage}`);
    // dist/daemon/cli.js is tsc's output for daemon/cli.ts (rootDir "." keeps the daemon/ prefix).
    expect(tsconfig.compilerOptions.rootDir).toBe('.');
    const source = pkg.bin.nodesage!.replace(new RegExp(`^${tsconfig.compilerOptions.outDir}/`), '').replace(/\.js$/, '.ts');
    expect(existsSync(join(repoRoot, source)), source).toBe(true);
    expect(readFileSync(join(repoRoot, source), 'utf8')).toMatch(/\.command\('daemon'\)/);
  });

  it('the default command is the one the DaemonSet runs, on the port it probes, as the release it names', () => {
    const cmd = execForm(last(runtime, 'CMD'));
    expect(cmd).toEqual(['daemon']);
    const ds = parseYaml(readFileSync(join(repoRoot, 'daemonset/base/agent/daemonset.yaml'), 'utf8'));
    const container = ds.spec.template.spec.containers[0];
    expect(container.args).toEqual(cmd);
    expect(last(runtime, 'EXPOSE').args.trim()).toBe(String(container.ports[0].containerPort));
    expect(all(runtime, 'LABEL').map((l) => l.args).join(' ')).toContain(`org.opencontainers.image.version="${pkg.version}"`);
    expect(container.image).toBe(`nodesage/nodesage:${pkg.version}`);
  });

  it('the image user is unprivileged; the DaemonSet opts into uid 0 explicitly', () => {
    expect(last(runtime, 'USER').args.trim()).toBe('10001:10001');
    const ds = parseYaml(readFileSync(join(repoRoot, 'daemonset/base/agent/daemonset.yaml'), 'utf8'));
    expect(ds.spec.template.spec.containers[0].securityContext.runAsUser).toBe(0);
  });
});
