/**
 * The served devices. Each is kept as the object a LIST returns (the GET-only properties at their
 * defaults, `@odata.type` first), so a page is one JSON.stringify of existing objects; the
 * GET-only values live beside it. Indexes by id and azureADDeviceId answer the connector's
 * lookups without a scan, and filtered listings are cached per filter until a device changes.
 */
import { SimulatorError } from './errors.js';
import type { CompiledFilter, LastSyncCondition } from './filter.js';
import { LIST_DEFAULTS, PROPERTY_BY_NAME, propertyProblem } from './properties.js';
import { isPlainObject } from '../common/values.js';

type Device = Record<string, unknown>;

const LIST_DEFAULT_NAMES = Object.keys(LIST_DEFAULTS);
const FILTER_CACHE_SIZE = 16;

/** Moves the GET-only values out of `device` (which becomes the LIST view, in place) and returns them. */
function splitDevice(device: Device): Device {
  const extras: Device = {};
  for (const name of LIST_DEFAULT_NAMES) {
    extras[name] = device[name];
    device[name] = LIST_DEFAULTS[name];
  }
  return extras;
}

export class DeviceStore {
  private readonly listed: Device[] = [];
  private readonly extras: Device[] = [];
  private readonly byId = new Map<string, number>();
  private readonly byAzureAD = new Map<string, number[]>();
  private readonly filtered = new Map<string, { version: number; indices: Uint32Array }>();
  private fullView: readonly Readonly<Device>[] | undefined;
  private version = 0;
  /** lastSyncDateTime of each device in ms (NaN when not a date), for range filters without a parse per device. */
  private lastSyncMs = new Float64Array(0);

  /**
   * Takes ownership of `devices`, which must be complete and valid, `@odata.type` first (generator
   * output or a checked tenant file): they are kept as they are, not copied, since a large tenant
   * is most of the simulator's memory.
   */
  constructor(devices: Device[]) {
    for (const device of devices) {
      this.extras.push(splitDevice(device));
      this.listed.push(device);
    }
    this.lastSyncMs = new Float64Array(this.listed.length);
    this.listed.forEach((_, i) => this.refreshLastSync(i));
    this.reindex();
  }

  private refreshLastSync(index: number): void {
    const raw = (this.listed[index] as Device)['lastSyncDateTime'];
    this.lastSyncMs[index] = typeof raw === 'string' ? Date.parse(raw) : NaN;
  }

  private matchingLastSync(conditions: readonly LastSyncCondition[]): number[] {
    const out: number[] = [];
    const times = this.lastSyncMs;
    for (let i = 0; i < times.length; i++) {
      const ms = times[i] as number;
      let ok = true;
      for (const c of conditions) {
        if (!(c.op === 'gt' ? ms > c.ms : c.op === 'ge' ? ms >= c.ms : c.op === 'lt' ? ms < c.ms : ms <= c.ms)) {
          ok = false;
          break;
        }
      }
      if (ok) out.push(i);
    }
    return out;
  }

  get size(): number {
    return this.listed.length;
  }

  /** The LIST view of the device at `index`. */
  listedAt(index: number): Readonly<Device> {
    const device = this.listed[index];
    if (device === undefined) throw new RangeError(`no device at ${index}`);
    return device;
  }

  indexOf(id: string): number | undefined {
    return this.byId.get(id.toLowerCase());
  }

  /** The GET view: every property with its real value. */
  full(index: number): Device {
    return { ...this.listedAt(index), ...this.extras[index] };
  }

  /** Every device with real values, as tests search outputs for them. Rebuilt only after a change. */
  all(): readonly Readonly<Device>[] {
    this.fullView ??= Object.freeze(this.listed.map((_, i) => Object.freeze(this.full(i))));
    return this.fullView;
  }

  /** Indices of the devices matching `filter`, in tenant order; undefined without a filter (all of them). */
  matching(filter: CompiledFilter | undefined): Uint32Array | undefined {
    if (filter === undefined) return undefined;
    const cached = this.filtered.get(filter.canonical);
    if (cached !== undefined && cached.version === this.version) {
      // Refresh recency so the busiest filters stay cached.
      this.filtered.delete(filter.canonical);
      this.filtered.set(filter.canonical, cached);
      return cached.indices;
    }
    let candidates: Iterable<number>;
    if (filter.lastSyncConditions !== undefined) {
      return this.remember(filter.canonical, Uint32Array.from(this.matchingLastSync(filter.lastSyncConditions)));
    } else if (filter.lookup?.property === 'id') {
      const i = this.byId.get(filter.lookup.value.toLowerCase());
      candidates = i === undefined ? [] : [i];
    } else if (filter.lookup?.property === 'azureADDeviceId') {
      candidates = this.byAzureAD.get(filter.lookup.value.toLowerCase()) ?? [];
    } else {
      candidates = this.listed.keys();
    }
    const out: number[] = [];
    // Filterable properties are all in the LIST view, so no merged copy is needed.
    for (const i of candidates) {
      if (filter.predicate(this.listed[i] as Device)) out.push(i);
    }
    return this.remember(filter.canonical, Uint32Array.from(out));
  }

  private remember(canonical: string, indices: Uint32Array): Uint32Array {
    if (this.filtered.size >= FILTER_CACHE_SIZE) {
      const oldest = this.filtered.keys().next().value;
      if (oldest !== undefined) this.filtered.delete(oldest);
    }
    this.filtered.set(canonical, { version: this.version, indices });
    return indices;
  }

  update(id: string, patch: Readonly<Record<string, unknown>>): void {
    const index = this.indexOf(id);
    if (index === undefined) throw new SimulatorError('unknown_device', `No served device has id '${id}'; pick one from handle.devices.`);
    if (!isPlainObject(patch)) {
      throw new SimulatorError('invalid_device_patch', 'The patch must be an object of managedDevice properties.');
    }
    const listed = this.listed[index] as Device;
    const extras = this.extras[index] as Device;
    for (const [name, value] of Object.entries(patch)) {
      const spec = PROPERTY_BY_NAME.get(name);
      if (spec === undefined) throw new SimulatorError('invalid_device_patch', `'${name}' is not a managedDevice property; use one of the 56 v1.0 property names.`);
      if (name === 'id' && typeof value === 'string' && value.toLowerCase() !== String(listed['id']).toLowerCase()) {
        throw new SimulatorError('invalid_device_patch', 'The id of a served device cannot change; add a device with a tenant file instead.');
      }
      const problem = propertyProblem(spec, value);
      if (problem !== undefined) throw new SimulatorError('invalid_device_patch', `${name} ${problem}.`);
    }
    for (const [name, value] of Object.entries(patch)) {
      if (name in LIST_DEFAULTS) extras[name] = value;
      else listed[name] = value;
    }
    this.refreshLastSync(index);
    this.changed();
    if ('azureADDeviceId' in patch) this.reindex();
  }

  /**
   * `count` devices drawn by `pick` (an index below size) check in at `nowIso`: their
   * lastSyncDateTime moves forward, as Intune records a check-in. Returns their ids.
   */
  checkIn(count: number, pick: (size: number) => number, nowIso: string): string[] {
    const ids: string[] = [];
    if (this.listed.length === 0) return ids;
    for (let k = 0; k < count; k++) {
      const index = pick(this.listed.length);
      const device = this.listed[index] as Device;
      device['lastSyncDateTime'] = nowIso;
      this.refreshLastSync(index);
      ids.push(String(device['id']));
    }
    this.changed();
    return ids;
  }

  /** For device actions: the action shows in deviceActionResults, as Intune reports it. */
  recordAction(index: number, actionName: string, patch: Readonly<Record<string, unknown>> = {}): void {
    const listed = this.listed[index] as Device;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const previous = Array.isArray(listed['deviceActionResults']) ? (listed['deviceActionResults'] as unknown[]) : [];
    listed['deviceActionResults'] = [
      ...previous.filter((r) => (r as Record<string, unknown>)['actionName'] !== actionName),
      { actionName, actionState: 'pending', startDateTime: now, lastUpdatedDateTime: now },
    ];
    Object.assign(listed, patch);
    this.changed();
  }

  private changed(): void {
    this.version++;
    this.fullView = undefined;
  }

  private reindex(): void {
    this.byId.clear();
    this.byAzureAD.clear();
    this.listed.forEach((device, i) => {
      this.byId.set(String(device['id']).toLowerCase(), i);
      const aad = device['azureADDeviceId'];
      if (typeof aad === 'string' && aad !== '') {
        const key = aad.toLowerCase();
        const list = this.byAzureAD.get(key);
        if (list === undefined) this.byAzureAD.set(key, [i]);
        else list.push(i);
      }
    });
  }
}
