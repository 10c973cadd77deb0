/**
 * The Settings posture panel in real headless Chromium against a real server: before a key it shows
 * the first-run hint (the command that makes one) and nothing else; then it renders the connection,
 * counts and devices, filters by compliance state (rows and counts agree with the API), refuses a
 * malformed filter with the API's sentence and no device list, shows an ended grace period as
 * ended, fits 1280 and 1920 px without a cut column, shows no PII, loads nothing from elsewhere,
 * violates no CSP, and leaves a screenshot in test-results/settings-panel.png.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgAvailable } from '../helpers/db.js';
import { findPii, piiValues, startTestServer, type TestServer } from './helpers.js';
import { FIRST_RUN_COMMAND } from '../../src/api/panel/page.js';

// These run inside the page (waitForFunction, evaluate); the test's own tsconfig has no DOM types.
declare const document: {
  body: { getAttribute(name: string): string | null };
  getElementById(id: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): ArrayLike<{ scrollWidth: number; clientWidth: number; id: string; className: string; getBoundingClientRect(): { right: number } }>;
};
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
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
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
    // Before a key: the exact command that makes one, and no posture at all.
    expect(await page.isVisible('[data-testid=first-run-hint]')).toBe(true);
    expect(await page.innerText('#first-run-command')).toBe(FIRST_RUN_COMMAND);
    expect(await page.isVisible('#panel')).toBe(false);
    expect(await page.locator('[data-testid^=count-]').count()).toBe(0);

    await page.fill('#api-key', readerKey);
    await page.click('#key-form button[type=submit]');
    await waitForDevices(null);
    expect(await page.isVisible('#key-form')).toBe(false);
    expect(await page.isVisible('[data-testid=first-run-hint]')).toBe(false);
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
    expect(await page.locator('#devices-body tr.device').count()).toBe(50);
  });

  it('filters the table by compliance state, matching the API', async () => {
    for (const state of ['noncompliant', 'inGracePeriod', 'compliant']) {
      const before = await page.getAttribute('body', 'data-devices-loaded');
      await page.selectOption('#f-compliance', state);
      await waitForDevices(before);
      const expected = await api(`/api/v1/integrations/intune/devices?compliance_state=${state}&limit=50`);
      const rows = page.locator('#devices-body tr.device');
      expect(await rows.count()).toBe(expected.devices.length);
      const states = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-compliance-state')));
      expect(new Set(states)).toEqual(new Set([state]));
      const ids = await page.locator('#devices-body tr.device td:first-child').allInnerTexts();
      expect(ids).toEqual(expected.devices.map((d: any) => d.device_id));
      expect(await page.locator('[data-testid=device-total]').innerText()).toBe(`(${expected.total} matching)`);
    }
    const before = await page.getAttribute('body', 'data-devices-loaded');
    await page.selectOption('#f-compliance', '');
    await waitForDevices(before);
  });

  it('shows an ended grace period as ended, and one still running as running', async () => {
    const before = await page.getAttribute('body', 'data-devices-loaded');
    await page.selectOption('#f-compliance', 'inGracePeriod');
    await waitForDevices(before);
    const expected = await api('/api/v1/integrations/intune/devices?compliance_state=inGracePeriod&limit=50');
    const texts = await page.locator('#devices-body tr.device td:nth-child(3)').allInnerTexts();
    const now = Date.now();
    const ended = expected.devices.map((d: any) => Date.parse(d.grace_period_expires_at) <= now);
    expect(ended).toContain(true);
    expect(ended).toContain(false);
    expect(texts.map((t) => /^grace period ended \d{4}-\d{2}-\d{2}$/.test(t))).toEqual(ended);
    expect(texts.filter((t) => /^in grace period until \d{4}-\d{2}-\d{2}$/.test(t))).toHaveLength(ended.filter((e: boolean) => !e).length);
    // The rest of a device's posture is one click away, in the row's detail.
    const firstDetail = page.locator('#devices-body tr.detail').first();
    expect(await firstDetail.isVisible()).toBe(false);
    await page.locator('#devices-body tr.device button').first().click();
    expect(await firstDetail.isVisible()).toBe(true);
    expect(await firstDetail.innerText()).toMatch(/Ownership[\s\S]*Serial fingerprint/);
    // A device not in compliance says what to fix, read from its detail route when the row opens.
    const fixes = firstDetail.locator('[data-testid=failing-settings] dd');
    await expect.poll(() => fixes.innerText(), { timeout: 10_000 }).not.toBe('reading…');
    expect(await fixes.innerText()).toMatch(/ is (off|below|above)|no pass(word|code)|shorter|older|jailbroken|rooted|allows apps/);
    const reset = await page.getAttribute('body', 'data-devices-loaded');
    await page.selectOption('#f-compliance', '');
    await waitForDevices(reset);
  });

  it('refuses a malformed filter with a sentence and shows no device list under it', async () => {
    const before = await page.getAttribute('body', 'data-devices-loaded');
    await page.fill('#f-q', 'zz');
    await waitForDevices(before);
    expect(await page.innerText('[data-testid=filter-error]')).toContain('Device id filter: must be the start of an Intune device id: 1 to 36 hex digits and dashes');
    expect(await page.locator('#devices-body tr').count()).toBe(0);
    expect(await page.innerText('[data-testid=device-total]')).toBe('');
    const fixed = await page.getAttribute('body', 'data-devices-loaded');
    await page.fill('#f-q', '');
    await waitForDevices(fixed);
    expect(await page.innerText('[data-testid=filter-error]')).toBe('');
    expect(await page.locator('#devices-body tr.device').count()).toBe(50);
    problems.length = 0; // the refused fetch is reported on the console; expected here
  });

  it.each([
    [1280, 800],
    [1920, 1080],
  ])('fits %i×%i: no card is wider than its box, no column cut', async (width, height) => {
    const sized = await browser.newPage({ viewport: { width, height } });
    try {
      await sized.goto(`${t.url}/settings`);
      await sized.waitForSelector('#key-form:not([hidden])');
      expect(await sized.isVisible('[data-testid=first-run-hint]')).toBe(true);
      await sized.fill('#api-key', readerKey);
      await sized.click('#key-form button[type=submit]');
      await sized.waitForFunction(() => document.body.getAttribute('data-devices-loaded') !== null);
      const cut = await sized.evaluate(() => {
        const out: string[] = [];
        for (const el of Array.from(document.querySelectorAll('.card, .table-wrap'))) {
          if (el.scrollWidth > el.clientWidth) out.push(`${el.id || el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
        }
        const wrap = document.querySelectorAll('.table-wrap')[0];
        const right = wrap?.getBoundingClientRect().right ?? 0;
        for (const th of Array.from(document.querySelectorAll('table.devices thead th'))) {
          if (th.getBoundingClientRect().right > right + 0.5) out.push(`column ends at ${th.getBoundingClientRect().right} > ${right}`);
        }
        return out;
      });
      expect(cut).toEqual([]);
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      if (width === 1280) await sized.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-1280.png'), fullPage: true });
    } finally {
      await sized.close();
    }
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
