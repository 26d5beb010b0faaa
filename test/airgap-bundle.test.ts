/**
 * Operator scripts for disconnected sites, run for real: the air-gap bundle
 * (without images: no docker or skopeo here) holds the models, manifests,
 * install.sh and SHA256SUMS; install.sh verifies the sums, refuses a changed
 * bundle, and writes a site overlay with the site's registry names that
 * kubectl renders. The model image build context is FROM scratch with the
 * model's id and digest. Every script is shellcheck-clean.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { readCatalog } from '../daemon/models/catalog.js';
import { tempDir } from './helpers/daemon-process.js';
import { ensureTinyModel } from './helpers/test-model.js';

const ROOT = join(import.meta.dirname, '..');
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

it('every script under scripts/ is shellcheck-clean', async () => {
  const scripts = readdirSync(join(ROOT, 'scripts')).filter((f) => f.endsWith('.sh'));
  expect(scripts).toEqual(expect.arrayContaining(['airgap-bundle.sh', 'airgap-install.sh', 'build-model-image.sh']));
  const r = await run('shellcheck', scripts.map((f) => join('scripts', f)));
  expect(r.stdout + r.stderr).toBe('');
  expect(r.code).toBe(0);
});

describe('scripts/build-model-image.sh', () => {
  it('writes a FROM scratch context with the model, its sidecar and labels with id and sha256', async () => {
    const out = join(tempDir(), 'ctx');
    const model = await ensureTinyModel();
    const r = await run('scripts/build-model-image.sh', ['--model', model, '--id', 'tiny-test', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const file = model.split('/').pop()!;
    const dockerfile = readFileSync(join(out, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM scratch$/m);
    expect(dockerfile).toContain('io.nodesage.model.id="tiny-test"');
    expect(dockerfile).toContain(`io.nodesage.model.sha256="${sha(model)}"`);
    expect(dockerfile).toContain(`COPY ${file} ${file}.sha256 /`);
    expect(readFileSync(join(out, `${file}.sha256`), 'utf8')).toBe(`${sha(model)}  ${file}\n`);
    expect(sha(join(out, file))).toBe(sha(model));
  });

  it('refuses a model whose sidecar does not match', async () => {
    const dir = tempDir();
    const model = join(dir, 'm.gguf');
    linkSync(await ensureTinyModel(), model);
    writeFileSync(`${model}.sha256`, `${'0'.repeat(64)}  m.gguf\n`);
    const r = await run('scripts/build-model-image.sh', ['--model', model, '--id', 'm', '--out', join(dir, 'ctx')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sha256 mismatch');
    expect(existsSync(join(dir, 'ctx'))).toBe(false);
  });
});

describe('scripts/airgap-bundle.sh and install.sh', () => {
  it('bundles models and manifests with SHA256SUMS; install.sh verifies, refuses a changed file, and writes the site overlay', async () => {
    const dir = tempDir();
    const tiny = await ensureTinyModel();
    // A catalog model as `nodesage model pull` leaves it: the file and its sidecar in the models folder.
    const entry = readCatalog()[0]!;
    const modelsDir = join(dir, 'models');
    mkdirSync(modelsDir);
    linkSync(tiny, join(modelsDir, entry.file));
    writeFileSync(join(modelsDir, `${entry.file}.sha256`), `${sha(tiny)}  ${entry.file}\n`);
    const tarball = join(dir, 'out', 'bundle.tar');
    const b = await run('scripts/airgap-bundle.sh', ['--out', tarball, '--no-images', '--model', entry.id, '--models-dir', modelsDir]);
    expect(b.code, b.stderr).toBe(0);

    const site = join(dir, 'site');
    mkdirSync(site);
    expect((await run('tar', ['-xf', tarball, '-C', site])).code).toBe(0);
    const root = join(site, `nodesage-airgap-${version}`);
    const sums = readFileSync(join(root, 'SHA256SUMS'), 'utf8');
    for (const f of [`models/${entry.file}`, `models/${entry.file}.sha256`, 'install.sh', 'bundle.json', 'manifests/rendered.yaml', 'manifests/daemonset/overlays/airgap/kustomization.yaml', `model-images/${entry.id}/Dockerfile`]) {
      expect(sums, f).toContain(`  ${f}\n`);
    }
    expect(sha(join(root, 'models', entry.file))).toBe(sha(tiny));
    expect(readFileSync(join(root, 'models/MODELS'), 'utf8')).toBe(`${entry.id} ${entry.file} ${entry.id}\n`);
    expect(JSON.parse(readFileSync(join(root, 'bundle.json'), 'utf8'))).toMatchObject({ version, imagesIncluded: false, models: [entry.id] });

    const ok = await run('./install.sh', ['--verify-only'], { cwd: root });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`${sums.trim().split('\n').length} files verified`);

    // The overlay with the site's registry names; kubectl renders it.
    const inst = await run('./install.sh', ['--registry', 'registry.site.internal:5000', '--delivery', 'image-volume', '--no-push', '--no-apply'], { cwd: root });
    expect(inst.code, inst.stderr).toBe(0);
    const objs = parseAllDocuments(readFileSync(join(root, 'site/rendered.yaml'), 'utf8')).map((d) => d.toJSON());
    const ds = objs.find((o) => o.kind === 'DaemonSet');
    expect(ds.spec.template.spec.containers[0].image).toBe(`registry.site.internal:5000/nodesage/nodesage:${version}`);
    expect(ds.spec.template.spec.containers[0].env).toContainEqual({ name: 'NODESAGE_MODEL', value: entry.id });
    expect(ds.spec.template.spec.volumes).toContainEqual({ name: 'models', image: { reference: `registry.site.internal:5000/nodesage/model:${entry.id}`, pullPolicy: 'IfNotPresent' } });

    // A changed model is caught before anything is used.
    appendFileSync(join(root, 'models', entry.file), 'x');
    const bad = await run('./install.sh', ['--verify-only'], { cwd: root });
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toContain(`models/${entry.file}: FAILED`);
  }, 120_000);

  it('refuses to bundle a model whose digest does not match its sidecar', async () => {
    const dir = tempDir();
    const entry = readCatalog()[0]!;
    linkSync(await ensureTinyModel(), join(dir, entry.file));
    writeFileSync(join(dir, `${entry.file}.sha256`), `${'1'.repeat(64)}  ${entry.file}\n`);
    const r = await run('scripts/airgap-bundle.sh', ['--out', join(dir, 'b.tar'), '--no-images', '--model', entry.id, '--models-dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sha256 mismatch');
    expect(existsSync(join(dir, 'b.tar'))).toBe(false);
  });
});
