/** find_asset: one machine by serial fingerprint, with every source and the provenance of each attribute. */
import { plural } from '../text.js';
import { describeTool } from './types.js';

export const findAssetDescriptor = describeTool(
  'find_asset',
  'find_asset',
  {
    description:
      'Finds the asset (one physical machine) whose Intune records or enrolled agents report a serial fingerprint ' +
      '(serial_fingerprint, as get_device or list_devices show it: hmac-sha256:…). Returns its sources, every attribute of the ' +
      'merged posture with its source (intune | agent) and confidence (mdm: Intune management channel; agent: an enrolled ' +
      "agent's self-report; stale: the source is older than 30 days for Intune, 24 hours for an agent), the attributes on which " +
      'the sources disagree, and any conflict (two machines claiming one serial: nothing is merged then, and each is listed).',
  },
  ({ assets }) =>
    assets
      .map((a) => {
        const attributes = Object.entries(a.attributes).map(([name, at]) => `${name}=${String(at.value)} (${at.source}, ${at.confidence})`);
        return [
          `Asset ${a.asset_id} (${a.os_family}): ${plural(a.sources.length, 'source')}: ${a.sources.map((s) => `${s.kind} ${s.id}`).join(', ')}.`,
          `Attributes: ${attributes.join('; ')}.`,
          a.disagreements.length > 0
            ? `Sources disagree on ${a.disagreements.map((d) => `${d.attribute} (${d.values.map((v) => `${v.source}: ${String(v.value)}`).join(' vs ')})`).join('; ')}.`
            : 'The sources agree.',
          ...(a.conflicts.length > 0 ? [`Conflict: ${a.conflicts.map((c) => c.kind).join(', ')}; nothing was merged on it.`] : []),
        ].join('\n');
      })
      .join('\n\n'),
);
