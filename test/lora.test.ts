/**
 * LoRA adapters: a generated adapter that matches the tiny model's shape is
 * checked, applied when the context is created (real llama.cpp), shown in
 * /v1/status, and generation still works; adapters that do not fit are
 * refused with the reason, like models.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Status } from '../daemon/core/contract.js';
import { LlmEngine, type LoraAdapterOption } from '../daemon/diagnoser/engine.js';
import { writeTestAdapter } from '../scripts/make-test-model.js';
import { type DaemonProcess, getJson, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';
import { ensureTinyModel } from './helpers/test-model.js';

const logger = pino({ level: 'silent' });
const engines: LlmEngine[] = [];
let daemon: DaemonProcess | undefined;

afterEach(async () => {
  for (const e of engines.splice(0)) await e.dispose();
  await daemon?.kill('SIGKILL');
  daemon = undefined;
});

async function engineWith(loras: LoraAdapterOption[]): Promise<LlmEngine> {
  const e = new LlmEngine({ modelPath: await ensureTinyModel(), memoryBudgetBytes: 1024 ** 3, contextSize: 1024, gpu: false, idleUnloadMs: 0, loras, logger });
  engines.push(e);
  return e;
}

describe('a LoRA adapter on the local model', () => {
  it('is checked, applied when the context is created, and generation still works', async () => {
    const path = join(tempDir(), 'tiny-lora.gguf');
    // Strong enough (alpha 64 on attention and feed-forward) that the greedy text shows it is applied.
    writeTestAdapter({ outFile: path, rank: 4, alpha: 64, targets: ['attn_q', 'attn_v', 'ffn_up', 'ffn_down'] });
    const sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
    const engine = await engineWith([{ path, scale: 0.5, sha256 }]);
    await engine.check();
    expect(engine.status().loras).toEqual([{ path, scale: 0.5, sha256, checked: true, applied: false, sizeBytes: readFileSync(path).length }]);
    const ask = (e: LlmEngine) => e.complete({ systemPrompt: 'You explain node problems.', userPrompt: 'kubelet: PLEG is not healthy', maxTokens: 12, repeatPenalty: 1 });
    const withAdapter = await ask(engine);
    expect(withAdapter.tokens.completion).toBeGreaterThan(0);
    expect(engine.status()).toMatchObject({ state: 'ready', loras: [{ path, applied: true }] });
    const plain = await ask(await engineWith([]));
    expect(plain.text).not.toBe(withAdapter.text);
    // And the adapter's effect is deterministic: a second engine with it writes the same text.
    expect((await ask(await engineWith([{ path, scale: 0.5 }]))).text).toBe(withAdapter.text);
  }, 120_000);

  it.each([
    ['made for another architecture', () => ({ shape: { architecture: 'qwen2' } }), /architecture "qwen2", the model is "llama"/],
    ['not an adapter (a model)', 'model', /not a LoRA adapter/],
    ['missing', 'missing', /file not found/],
  ])('is refused when %s', async (_what, kind, reason) => {
    const dir = tempDir();
    let path = join(dir, 'adapter.gguf');
    if (kind === 'model') path = await ensureTinyModel();
    else if (kind !== 'missing') writeTestAdapter({ outFile: path, ...(kind as () => object)() });
    const engine = await engineWith([{ path }]);
    await expect(engine.check()).rejects.toMatchObject({ code: 'ERR_ADAPTER_INVALID' });
    expect(engine.status().state).toBe('refused');
    expect(engine.status().reason).toMatch(reason);
  });

  it('is refused when its sha256 differs from the expected one', async () => {
    const path = join(tempDir(), 'tiny-lora.gguf');
    writeTestAdapter({ outFile: path });
    const engine = await engineWith([{ path, sha256: '0'.repeat(64) }]);
    await expect(engine.check()).rejects.toMatchObject({ code: 'ERR_MODEL_CHECKSUM' });
  });
});

describe('llm.loras in the daemon', () => {
  it('shows the adapter, verified against its sidecar, in /v1/status', async () => {
    const dir = tempDir();
    const path = join(dir, 'tiny-lora.gguf');
    writeTestAdapter({ outFile: path });
    const sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
    // What `nodesage model import` leaves next to a file.
    writeFileSync(`${path}.sha256`, `${sha256}  tiny-lora.gguf\n`);
    writeFileSync(join(dir, 'config.yaml'), `llm:\n  loras:\n    - path: ${path}\n      scale: 0.75\n`);
    daemon = await startDaemon({
      env: { NODESAGE_CONFIG: join(dir, 'config.yaml'), NODESAGE_DATA_DIR: join(dir, 'data'), NODESAGE_MODEL: await ensureTinyModel() },
    });
    const status = await waitFor(async () => {
      const s = (await getJson<Status>(`${daemon!.url}/v1/status`)).body;
      return s.model.loras?.[0]?.checked ? s : null;
    });
    expect(status.model.loras).toEqual([{ path, scale: 0.75, sha256, checked: true, applied: false, sizeBytes: readFileSync(path).length }]);
    expect(status.rulesOnly).toBe(false);
  }, 60_000);
});
