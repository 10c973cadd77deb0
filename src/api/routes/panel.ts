/**
 * The read-only Settings page with its "Device posture (Intune)" section. The HTML holds no data
 * and needs no authentication; the data comes from the JSON API with the key the user types in.
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { PANEL_ICON, PANEL_STYLE } from '../panel/assets.js';
import { PANEL_CSP, PANEL_PATHS, renderSettingsPage } from '../panel/page.js';
import { loadPanelScript } from '../panel/script.js';
import { ASSETS_SCRIPT_PATH, ASSETS_STYLE } from '../panel/assets-section.js';

function asset(body: string, type: string): { body: string; type: string; etag: string } {
  return { body, type, etag: `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

export function panelRoutes(app: FastifyInstance): void {
  const page = asset(renderSettingsPage(), 'text/html; charset=utf-8');
  const script = asset(loadPanelScript(), 'text/javascript; charset=utf-8');
  const assetsScript = asset(loadPanelScript('assets-panel'), 'text/javascript; charset=utf-8');
  const style = asset(PANEL_STYLE + ASSETS_STYLE, 'text/css; charset=utf-8');
  const icon = asset(PANEL_ICON, 'image/svg+xml');

  const send = (reply: FastifyReply, a: ReturnType<typeof asset>, cacheControl: string) =>
    reply
      .header('content-security-policy', PANEL_CSP)
      .header('x-frame-options', 'DENY')
      .header('cache-control', cacheControl)
      .header('etag', a.etag)
      .type(a.type)
      .send(a.body);

  app.get(PANEL_PATHS.settings, async (_request, reply) => send(reply, page, 'no-store'));
  app.get(PANEL_PATHS.posture, async (_request, reply) => send(reply, page, 'no-store'));
  app.get(PANEL_PATHS.script, async (_request, reply) => send(reply, script, 'no-cache'));
  app.get(ASSETS_SCRIPT_PATH, async (_request, reply) => send(reply, assetsScript, 'no-cache'));
  app.get(PANEL_PATHS.style, async (_request, reply) => send(reply, style, 'no-cache'));
  app.get(PANEL_PATHS.icon, async (_request, reply) => send(reply, icon, 'max-age=86400'));
}
