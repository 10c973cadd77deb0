/**
 * The Settings posture panel in real headless Chromium against a real server: it asks for a key,
 * renders the connection, counts and devices, filters by compliance state (rows and counts agree
 * with the API), shows no PII, loads nothing from elsewhere, violates no CSP, and leaves a
 * screenshot in test-results/settings-panel.png.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgAvailable } from '../helpers/db.js';
import { findPii, piiValues, startTestServer, type TestServer } from './helpers.js';

// These run inside the page (waitForFunction, evaluate); the test's own tsconfig has no DOM types.
declare const document: { body: { getAttribute(name: string): string | null }; getElementById(id: string): { textContent: string | null } | null };
declare const sessionStorage: { length: number };

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.resolve(import.meta.dirname, '../../test-results/settings-panel.png');
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env['CI']) throw new Error(`CI needs Chromium at ${CHROMIUM} for the Settings panel test (apt-get install chromium)`);
  process.stderr.write(`\n!!! ${CHROMIUM} is missing: the Settings panel browser test is SKIPPED. Install chromium to run it.\n\n`);
}

describe.skipIf(!haveChromium)('Settings panel in headless Chromium', () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let readerKey: string;
  const foreignRequests: string[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    // PostgreSQL when there is one: it opens in a fraction of PGlite's time (the API tests cover both).
    t = await startTestServer(pgAvailable() ? 'postgres' : 'pglite', { otherDevices: 5 });
    readerKey = await t.key('default', 'reader');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('request', (request) => {
      if (!request.url().startsWith(t.url)) foreignRequests.push(request.url());
    });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  const api = async (urlPath: string) => (await t.request('GET', urlPath, { key: readerKey })).body;
  const waitForDevices = async (after: string | null) =>
    page.waitForFunction((previous) => {
      const loaded = document.body.getAttribute('data-devices-loaded');
      return loaded !== null && loaded !== previous;
    }, after);

  it('asks for a key, then renders the connection, the counts and the device table', async () => {
    await page.goto(`${t.url}/settings`);
    expect(page.locator('#key-form')).toBeDefined();
    await page.waitForSelector('#key-form:not([hidden])');
    expect(await page.title()).toContain('Device posture (Intune)');

    await page.fill('#api-key', readerKey);
    await page.click('#key-form button[type=submit]');
    await waitForDevices(null);
    expect(await page.isVisible('#key-form')).toBe(false);
    expect(await page.isVisible('#panel')).toBe(true);

    const summary = await api('/api/v1/integrations/intune/summary');
    const connections = await page.locator('[data-testid=connections] tbody tr').allInnerTexts();
    expect(connections).toHaveLength(1);
    expect(connections[0]).toContain('DEMO');
    expect(connections[0]).toContain('succeeded');
    for (const [state, count] of Object.entries<number>(summary.counts_by_compliance_state)) {
      expect(await page.locator(`[data-testid="count-compliance-${state}"]`).innerText()).toBe(String(count));
    }
    for (const [family, count] of Object.entries<number>(summary.counts_by_os_family)) {
      expect(await page.locator(`[data-testid="count-os-${family}"]`).innerText()).toBe(String(count));
    }
    expect(await page.locator('[data-testid=device-total]').innerText()).toBe(`(${summary.devices} matching)`);
    expect(await page.locator('#devices-body tr').count()).toBe(50);
  });

  it('filters the table by compliance state, matching the API', async () => {
    for (const state of ['noncompliant', 'inGracePeriod', 'compliant']) {
      const before = await page.getAttribute('body', 'data-devices-loaded');
      await page.selectOption('#f-compliance', state);
      await waitForDevices(before);
      const expected = await api(`/api/v1/integrations/intune/devices?compliance_state=${state}&limit=50`);
      const rows = page.locator('#devices-body tr');
      expect(await rows.count()).toBe(expected.devices.length);
      const states = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-compliance-state')));
      expect(new Set(states)).toEqual(new Set([state]));
      const ids = await page.locator('#devices-body tr td:first-child').allInnerTexts();
      expect(ids).toEqual(expected.devices.map((d: any) => d.device_id));
      expect(await page.locator('[data-testid=device-total]').innerText()).toBe(`(${expected.total} matching)`);
    }
    const before = await page.getAttribute('body', 'data-devices-loaded');
    await page.selectOption('#f-compliance', '');
    await waitForDevices(before);
  });

  it('shows no PII, loads nothing from elsewhere, and breaks no CSP; writes a screenshot', async () => {
    const pii = piiValues(t.server.runtime.demo!.simulator.devices);
    expect(pii.length).toBeGreaterThan(100);
    const html = await page.content();
    const text = await page.innerText('body');
    expect(findPii(html, pii)).toEqual([]);
    expect(findPii(text, pii)).toEqual([]);
    expect(html).not.toContain(readerKey);
    expect(foreignRequests, 'requests to other origins').toEqual([]);
    expect(problems, 'console errors and page errors').toEqual([]);
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(fs.statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
  });

  it('keeps the key for the tab only, forgets it on request, and refuses a wrong one', async () => {
    await page.reload();
    await page.waitForSelector('#panel:not([hidden])');
    await page.click('#sign-out');
    await page.waitForSelector('#key-form:not([hidden])');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    const gateKey = await t.key('default', 'gate');
    await page.fill('#api-key', gateKey);
    await page.click('#key-form button[type=submit]');
    await page.waitForFunction(() => (document.getElementById('key-error')?.textContent ?? '').length > 0);
    expect(await page.innerText('#key-error')).toContain('reader or admin');

    await page.fill('#api-key', 'icn_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    await page.click('#key-form button[type=submit]');
    await page.waitForFunction(() => /not accepted/.test(document.getElementById('key-error')?.textContent ?? ''));
    // The browser's console reports the refused fetches; those are expected here.
    problems.length = 0;
  });
});
