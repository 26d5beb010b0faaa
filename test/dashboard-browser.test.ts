/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by
 * playwright-core (which never downloads a browser). Against a seeded agent:
 * the page loads with the findings, a finding opens with its evidence and
 * diagnosis, an ask streams an answer with citations, the layout holds at
 * phone width, and behind the agent's token check the page asks for a token
 * and sends it. Screenshots go to test/artifacts/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, readTokenFile, StaticTokens } from '../daemon/api/auth/static-tokens.js';
import { PROJECT_ROOT, tempDir } from './helpers/daemon-process.js';
import { IDS, type SurfaceNode, startSurfaceNode } from './helpers/surface-node.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(PROJECT_ROOT, 'test/artifacts');

let node: SurfaceNode;
let browser: Browser;

beforeAll(async () => {
  // The test needs the Debian package (`.ci/run` installs it); without it, it fails here.
  expect(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install chromium)`).toBe(true);
  mkdirSync(ARTIFACTS, { recursive: true });
  node = await startSurfaceNode('edge-04');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu'] });
});

afterAll(async () => {
  await browser?.close();
  await node?.close();
});

describe('dashboard in chromium', () => {
  it('shows health and open findings (root cause first), opens one with evidence and diagnosis, and streams an answer with citations', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const external: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(node.url)) external.push(r.url());
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${node.url}/`);
    await page.waitForSelector('body[data-loaded="true"]');

    await expect.poll(() => page.textContent('#node-name')).toBe('edge-04');
    expect(await page.textContent('#sources')).toContain('kubelet: healthy');
    const titles = await page.$$eval('#findings .finding .t', (els) => els.map((e) => e.textContent));
    expect(titles).toHaveLength(3);
    expect(titles[0]).toBe('Filesystem /var/lib/containerd is 97% full');
    // The warning group: the root cause (crash loop) before the probe failure the disk explains.
    expect(titles.slice(1)).toEqual([
      'Container app of shop/api-7d9f8c6b5-x2x9q is crash-looping (exit code 1, 7 restarts)',
      'Liveness probe of media/transcoder-69f8b7c6d5-8n4kd/transcoder keeps failing',
    ]);
    expect(await page.$$eval('#charts svg, #charts canvas', (els) => els.length)).toBeGreaterThanOrEqual(4);
    expect(await page.textContent('#timeline')).toContain('opened');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-desktop.png'), fullPage: true });

    await page.click(`#findings .finding[data-id="${IDS.probe}"]`);
    await page.waitForSelector('#detail:not([hidden]) .diagnosis');
    const detail = (await page.textContent('#detail'))!;
    expect(detail).toContain('Killing: Container transcoder failed liveness probe');
    expect(detail).toContain('Caused by');
    expect(detail).toContain('Filesystem /var/lib/containerd is 97% full');
    expect(detail).toContain('Probable cause');
    expect(detail).toContain('kubectl -n media describe pod transcoder-69f8b7c6d5-8n4kd');
    expect(detail).toContain('by rule-hint, confidence');
    await page.click('#detail button:has-text("Helpful")');
    await expect.poll(() => page.textContent('#detail .feedback [role=status]')).toContain('recorded');
    await page.locator('#detail').screenshot({ path: join(ARTIFACTS, 'finding-detail.png') });

    await page.fill('#ask-input', 'why is the disk full on this node?');
    await page.click('#ask-submit');
    await expect.poll(() => page.textContent('#ask-meta'), { timeout: 15_000 }).toMatch(/rule-hint/);
    expect(await page.textContent('#ask-answer')).toMatch(/\S/);
    const cites = await page.$$eval('#ask-citations li', (els) => els.map((e) => e.textContent ?? ''));
    expect(cites.some((c) => c.includes('Filesystem /var/lib/containerd is 97% full'))).toBe(true);
    await page.locator('#ask-answer').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(ARTIFACTS, 'ask.png'), fullPage: true });

    const fb = (await (await fetch(`${node.url}/v1/export/feedback.jsonl`)).text()).trim().split('\n');
    expect(JSON.parse(fb.at(-1)!)).toMatchObject({ finding: { id: IDS.probe }, feedback: { helpful: true } });
    expect(external).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('holds its layout at 375 px (no horizontal scroll, everything labelled)', async () => {
    const page = await browser.newPage({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await page.goto(`${node.url}/`);
    await page.waitForSelector('body[data-loaded="true"]');
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    const wide = await page.evaluate<string[]>(
      "[...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1).map((e) => e.tagName + '.' + e.className)",
    );
    expect(wide).toEqual([]);
    // Every form control has a label; every section a heading.
    const unlabelled = await page.evaluate<string[]>("[...document.querySelectorAll('input, textarea')].filter((e) => !e.labels || e.labels.length === 0).map((e) => e.id)");
    expect(unlabelled).toEqual([]);
    const sections = await page.$$eval('main section', (els) => els.filter((e) => !e.getAttribute('aria-labelledby')).length);
    expect(sections).toBe(0);
    await page.click(`#findings .finding[data-id="${IDS.crash}"]`);
    await page.waitForSelector('#detail:not([hidden]) .diagnosis');
    expect(await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth')).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-375px.png'), fullPage: true });
    await page.close();
  });

  it('behind the agent\'s token check: the page loads without a token, asks for one, refuses a wrong one and sends the right one with every call', async () => {
    const file = join(tempDir(), 'tokens');
    const token = createToken(file, 'site-ops');
    const guarded = await startSurfaceNode('edge-05', { access: { authenticator: new StaticTokens(readTokenFile(file)) } });
    const page = await browser.newPage({ viewport: { width: 800, height: 700 } });
    const auth: (string | undefined)[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/v1/')) auth.push(r.headers().authorization);
    });
    try {
      await page.goto(`${guarded.url}/`);
      await page.waitForSelector('#token-form:not([hidden])');
      // Nothing of the node shows until a token is accepted.
      expect(await page.isVisible('#main')).toBe(false);
      await page.fill('#token-input', 'not-the-token');
      await page.click('#token-form button[type=submit]');
      await expect.poll(() => page.textContent('#token-error')).toBe('That token was refused.');
      await page.screenshot({ path: join(ARTIFACTS, 'token.png') });
      await page.fill('#token-input', token);
      await page.click('#token-form button[type=submit]');
      await page.waitForSelector('body[data-loaded="true"]');
      expect(await page.isVisible('#main')).toBe(true);
      expect(await page.isVisible('#token-form')).toBe(false);
      expect(await page.textContent('#node-name')).toBe('edge-05');
      expect(await page.$$eval('#findings .finding', (els) => els.length)).toBe(3);
      expect(await page.evaluate<string | null>("sessionStorage.getItem('nodesage.token')")).toBe(token);
      await page.fill('#ask-input', 'why is the disk full?');
      await page.click('#ask-submit');
      await expect.poll(() => page.textContent('#ask-meta'), { timeout: 15_000 }).toMatch(/rule-hint/);
      expect(auth.at(-1)).toBe(`Bearer ${token}`);
      expect(auth.filter((a) => a === `Bearer ${token}`).length).toBeGreaterThanOrEqual(5);
    } finally {
      await page.close();
      await guarded.close();
    }
  });
});
