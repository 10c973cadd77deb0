/**
 * The shape every tool module fills in: its descriptor (what a client is told) and its result
 * summary (the text content of a successful result). A tool has no handler of its own: the
 * server's one dispatcher (../dispatch.ts) sends every call to connector.invoke, which validates
 * the arguments once, against the same schemas a model is shown here.
 */
import type { Capability, OperationName } from '../../connector/contract.js';
import { findOperation, OPERATION_SCHEMAS, type OperationOutput } from '../../connector/operations.js';

export const TOOL_NAMES = ['list_devices', 'get_device', 'get_device_compliance', 'find_asset', 'sync_device', 'remote_lock'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export interface ToolDescriptor<N extends OperationName> {
  readonly name: ToolName;
  /** The connector operation the tool adapts; its capability decides listing, annotations and audit. */
  readonly operation: N;
  readonly capability: Capability;
  readonly title: string;
  /** For a model: what it does, when to use it, what comes back. */
  readonly description: string;
  readonly input: (typeof OPERATION_SCHEMAS)[N]['input'];
  readonly output: (typeof OPERATION_SCHEMAS)[N]['output'];
  /** The text content of a successful result: short and model-readable (postures are already redacted). */
  summarize(value: OperationOutput<N>): string;
}

/** A tool with its operation's types erased, as the server lists and dispatches it. */
export interface McpTool {
  readonly name: ToolName;
  readonly operation: OperationName;
  readonly capability: Capability;
  readonly title: string;
  readonly description: string;
  readonly input: (typeof OPERATION_SCHEMAS)[OperationName]['input'];
  readonly output: (typeof OPERATION_SCHEMAS)[OperationName]['output'];
  /** Called only with a value the connector returned for `operation`. */
  summarize(value: unknown): string;
}

/**
 * Builds a tool's descriptor from its operation: the capability and schemas are read from the
 * connector's descriptor, never restated, so a tool cannot claim less than the operation does.
 */
export function describeTool<N extends OperationName>(
  name: ToolName,
  operation: N,
  text: { readonly title?: string; readonly description: string },
  summarize: (value: OperationOutput<N>) => string,
): ToolDescriptor<N> {
  const op = findOperation(operation);
  if (op === undefined) throw new Error(`tool ${name} adapts ${operation}, which the connector does not define`);
  return Object.freeze({
    name,
    operation,
    capability: op.capability,
    title: text.title ?? op.title,
    description: text.description,
    input: OPERATION_SCHEMAS[operation].input,
    output: OPERATION_SCHEMAS[operation].output,
    summarize,
  });
}

export function eraseTool<N extends OperationName>(descriptor: ToolDescriptor<N>): McpTool {
  return Object.freeze({
    name: descriptor.name,
    operation: descriptor.operation,
    capability: descriptor.capability,
    title: descriptor.title,
    description: descriptor.description,
    input: descriptor.input,
    output: descriptor.output,
    summarize: (value: unknown) => descriptor.summarize(value as OperationOutput<N>),
  });
}
