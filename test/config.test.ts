import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseListen } from '../daemon/config.js';
import { DETECTOR_NAMES } from '../daemon/detectors/index.js';
import { looksLikeId, readCatalog, resolveModel } from '../daemon/models.js';
import { runCli, tempDir } from './helpers/daemon-process.js';

const noSa = '/nonexistent-service-account';

describe('config', () => {
  it('applies defaults < file < env < flags and freezes the result', () => {
    const dir = tempDir();
    const file = join(dir, 'nodesage.yaml');
    writeFileSync(file, 'nodeName: from-file\nlisten: 127.0.0.1:9000\nretention:\n  maxAgeDays: 7\ndetectors:\n  disk:\n    warnPercent: 70\n');
    const cfg = loadConfig({
      env: { NODESAGE_CONFIG: file, NODESAGE_LISTEN: '127.0.0.1:9100', NODE_NAME: 'from-env' },
      flags: { listen: 'unix:/tmp/ns.sock' },
      cwd: dir,
      serviceAccountDir: noSa,
    });
    expect(cfg.nodeName).toBe('from-env');
    expect(cfg.listen).toEqual({ kind: 'unix', path: '/tmp/ns.sock' });
    expect(cfg.retention.maxAgeDays).toBe(7);
    expect(cfg.retention.maxSizeMB).toBe(256);
    expect(cfg.detectors.disk?.warnPercent).toBe(70);
    expect(cfg.mode).toBe('host');
    expect(cfg.dataDir).toBe(join(dir, '.nodesage'));
    expect(cfg.sources.kubeApi).toBe(false);
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.retention)).toBe(true);
  });

  it('names the origin, the value and what is allowed for a bad value', () => {
    const bad = (env: Record<string, string>) => {
      try {
        loadConfig({ env, serviceAccountDir: noSa });
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('expected a ConfigError');
    };
    const e1 = bad({ NODESAGE_LISTEN: 'nonsense' });
    expect(e1).toBeInstanceOf(ConfigError);
    expect(e1.message).toBe('invalid configuration NODESAGE_LISTEN="nonsense": host:port (e.g. 127.0.0.1:8877) or unix:/path/to.sock');
    expect(bad({ NODESAGE_STANDALONE: 'maybe' }).origin).toBe('NODESAGE_STANDALONE');
    expect(bad({ NODESAGE_LOG_LEVEL: 'loud' }).allowed).toContain('debug');
    expect(bad({ NODE_NAME: 'Not_A_Node' }).origin).toBe('NODE_NAME');
    const dir = tempDir();
    writeFileSync(join(dir, 'c.yaml'), 'listen: 1.2.3.4:8877\nbogus: 1\n');
    const e2 = bad({ NODESAGE_CONFIG: join(dir, 'c.yaml') });
    expect(e2.origin).toMatch(/c\.yaml:bogus$/);
  });

  it('detects kubeconfig and in-cluster modes', () => {
    const sa = tempDir();
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'x');
    const inCluster = loadConfig({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1', NODE_NAME: 'n1', NODE_IP: '10.1.2.3' }, serviceAccountDir: sa });
    expect(inCluster.mode).toBe('in-cluster');
    expect(inCluster.dataDir).toBe('/var/lib/nodesage');
    expect(inCluster.kubeletUrl).toBe('https://10.1.2.3:10250');
    expect(inCluster.sources.kubeApi).toBe(true);
    const kc = loadConfig({ env: { KUBECONFIG: '/tmp/kc.yaml', NODE_NAME: 'n1', NODESAGE_STANDALONE: 'true' }, serviceAccountDir: noSa });
    expect(kc.mode).toBe('kubeconfig');
    expect(kc.kubeconfig).toBe('/tmp/kc.yaml');
    expect(kc.sources.kubeApi).toBe(false);
  });

  it('parses listen addresses', () => {
    expect(parseListen('127.0.0.1:8877')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 8877 });
    expect(parseListen('[::1]:80')).toEqual({ kind: 'tcp', host: '::1', port: 80 });
    expect(parseListen(':8877')).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 8877 });
    expect(parseListen('localhost:99999')).toBeNull();
    expect(parseListen('unix:relative')).toBeNull();
  });
});

describe('model from the catalog', () => {
  const catalog = JSON.parse(readFileSync('models/catalog.json', 'utf8')) as { models: ({ id: string; file: string; sha256: string | null } & Record<string, unknown>)[] };
  const first = catalog.models[0]!;

  it('resolves a catalog id to its file under llm.modelsDir, and keeps a path as given', () => {
    const byId = loadConfig({ env: { NODESAGE_MODEL: first.id, NODE_NAME: 'n1' }, serviceAccountDir: noSa });
    expect(byId.model).toBe(join('/var/lib/nodesage/models', first.file));
    expect(byId.llm.sha256).toBe(first.sha256);
    const elsewhere = loadConfig({ env: { NODESAGE_MODEL: first.id, NODESAGE_LLM_MODELS_DIR: '/srv/models', NODE_NAME: 'n1' }, serviceAccountDir: noSa });
    expect(elsewhere.model).toBe(join('/srv/models', first.file));
    const byPath = loadConfig({ flags: { model: './my-model.gguf', nodeName: 'n1' }, serviceAccountDir: noSa });
    expect(byPath.model).toBe('./my-model.gguf');
  });

  it('refuses an id the catalog does not have, naming the ids it has', () => {
    let err: unknown;
    try {
      loadConfig({ env: { NODESAGE_MODEL: 'qwen9-70b-instruct', NODE_NAME: 'n1' }, serviceAccountDir: noSa });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain('NODESAGE_MODEL');
    expect((err as ConfigError).message).toContain(first.id);
  });

  it('refuses a malformed catalog, resolves ids of a good one, and knows a path from an id', () => {
    const dir = tempDir();
    const file = join(dir, 'catalog.json');
    const sha = 'a'.repeat(64);
    const entry = { ...catalog.models[0]!, id: 'ok', file: 'ok.gguf', sha256: sha, pinned: true };
    writeFileSync(file, JSON.stringify({ models: [entry, { ...entry, id: 'escape', file: '../../etc/passwd.gguf' }] }));
    expect(() => readCatalog(file)).toThrow('models.1.file');
    writeFileSync(file, JSON.stringify({ models: [entry] }));
    const models = readCatalog(file);
    expect(resolveModel('ok', '/m', models)).toEqual({ path: '/m/ok.gguf', id: 'ok', sha256: sha });
    expect(resolveModel('escape', '/m', models)).toBeNull();
    expect(looksLikeId('/var/lib/nodesage/models/x.gguf')).toBe(false);
    expect(looksLikeId('x.GGUF')).toBe(false);
    expect(looksLikeId('qwen2.5-0.5b-instruct-q8_0')).toBe(true);
  });
});

describe('detector options', () => {
  /** The ConfigError a config file (YAML text) and env raise. */
  const rejected = (yaml: string | null, env: Record<string, string> = {}) => {
    const dir = tempDir();
    const file = join(dir, 'nodesage.yaml');
    if (yaml !== null) writeFileSync(file, yaml);
    try {
      loadConfig({ env: { ...(yaml !== null ? { NODESAGE_CONFIG: file } : {}), ...env }, cwd: dir, serviceAccountDir: noSa });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it('rejects a mistyped key, naming it and the keys the detector knows', () => {
    const e = rejected('detectors:\n  disk:\n    warnPercnt: 90\n');
    expect(e.origin).toMatch(/nodesage\.yaml:detectors\.disk\.warnPercnt$/);
    expect(e.value).toBe(90);
    expect(e.allowed).toBe('not a known key (known: warnPercent, criticalPercent, inodeWarnPercent, inodeCriticalPercent, ignoreFsTypes)');
    const unknownDetector = rejected('detectors:\n  dsik:\n    warnPercent: 90\n');
    expect(unknownDetector.origin).toMatch(/:detectors\.dsik$/);
    expect(unknownDetector.allowed).toContain('known: disk, hostMemory, crashLoop');
  });

  it('rejects a non-number and out-of-range percents from the file and from the environment', () => {
    const word = rejected('detectors:\n  disk:\n    criticalPercent: ninety\n');
    expect(word.message).toMatch(/nodesage\.yaml:detectors\.disk\.criticalPercent="ninety": a percent from 0 to 100$/);
    const fromFile = rejected('detectors:\n  statsSummary:\n    pidCriticalPercent: 101\n');
    expect(fromFile.message).toMatch(/nodesage\.yaml:detectors\.statsSummary\.pidCriticalPercent=101: a percent from 0 to 100$/);
    const fromEnv = rejected(null, { NODESAGE_DISK_WARN_PERCENT: '200' });
    expect(fromEnv.message).toBe('invalid configuration NODESAGE_DISK_WARN_PERCENT=200: a percent from 0 to 100');
    expect(rejected(null, { NODESAGE_DISK_CRITICAL_PERCENT: '-1' }).origin).toBe('NODESAGE_DISK_CRITICAL_PERCENT');
    expect(rejected('detectors:\n  crashLoop:\n    minRestarts: 2.5\n').allowed).toBe('an integer from 1 to 1000000');
  });

  it('rejects a warning threshold past its critical one, also against a default', () => {
    const both = rejected('detectors:\n  disk:\n    warnPercent: 90\n    criticalPercent: 80\n');
    expect(both.message).toMatch(/:detectors\.disk\.warnPercent=90: at most detectors\.disk\.criticalPercent \(80\)$/);
    // The default critical is 95; the environment's warning overrides the file's.
    const envWarn = rejected('detectors:\n  disk:\n    warnPercent: 70\n', { NODESAGE_DISK_WARN_PERCENT: '99' });
    expect(envWarn.message).toBe('invalid configuration NODESAGE_DISK_WARN_PERCENT=99: at most detectors.disk.criticalPercent (95)');
    // Available memory runs the other way: critical is the lower percent.
    const memory = rejected('detectors:\n  hostMemory:\n    availableCriticalPercent: 10\n');
    expect(memory.message).toMatch(/:detectors\.hostMemory\.availableCriticalPercent=10: at most detectors\.hostMemory\.availableWarnPercent \(5\)$/);
  });

  it('switches detectors off by name and names the known ones for an unknown id', () => {
    const e = rejected('detectors:\n  disabled: [crashloop, crash-loop]\n');
    expect(e.origin).toMatch(/nodesage\.yaml:detectors\.disabled$/);
    expect(e.value).toBe('crash-loop');
    expect(e.allowed).toBe(`a detector name (${DETECTOR_NAMES.join(', ')})`);
    expect(DETECTOR_NAMES).toContain('log-rules');
    expect(rejected(null, { NODESAGE_DETECTORS_DISABLED: 'disk,nope' }).message).toMatch(/^invalid configuration NODESAGE_DETECTORS_DISABLED="nope": a detector name \(disk, host-memory, /);
    const cfg = loadConfig({ env: { NODESAGE_DETECTORS_DISABLED: 'crashloop, npd-events' }, serviceAccountDir: noSa });
    expect(cfg.detectors.disabled).toEqual(['crashloop', 'npd-events']);
    expect(Object.isFrozen(cfg.detectors.disabled)).toBe(true);
  });

  it('stops the daemon at start-up with exit 2 and one line naming the key', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'nodesage.yaml'), 'detectors:\n  disk:\n    warnPercnt: 90\n');
    const r = await runCli(['daemon'], { env: { NODESAGE_CONFIG: join(dir, 'nodesage.yaml'), NODESAGE_DATA_DIR: join(dir, 'data'), NODESAGE_LISTEN: '127.0.0.1:0' } });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `nodesage: invalid configuration ${join(dir, 'nodesage.yaml')}:detectors.disk.warnPercnt=90: not a known key (known: warnPercent, criticalPercent, inodeWarnPercent, inodeCriticalPercent, ignoreFsTypes)\n`,
    );
  });
});
