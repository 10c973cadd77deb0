/** Library entry point for hosts that embed the connector in Node. */
export { loadConfig, ConfigError, type Config } from './config/index.js';
export { openDatabase, type Db } from './db/index.js';
export * from './connector/contract.js';
export * from './connector/posture.js';
export type { Actor, AppendInput, AppendReceipt, ChronicleEvent, ChronicleWriter } from './chronicle/types.js';
