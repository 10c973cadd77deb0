import { createGate, loadConfig, loadGatePolicy, openRuntime } from '../src/index.js';

const config = loadConfig(process.env);
const policy = loadGatePolicy(config); // INTUNE_POLICY_FILE, validated before anything starts
const runtime = await openRuntime(config); // database, Chronicle, connector (the demo tenant without ENTRA_*)
const gate = createGate({ connector: runtime.connector, chronicle: runtime.chronicle, policy });

const [accord = 'device-management', deviceid] = process.argv.slice(2);
const result = await gate.check({ accord, claims: deviceid === undefined ? {} : { deviceid } }); // the user token's claims
console.log(result.decision, result.reason, result.event?.seq ?? null);
await runtime.close();
