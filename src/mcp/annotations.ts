/**
 * What a client is told about a tool's effects, derived from the operation's capability and
 * nothing else: the same field the connector enforces, so the hints cannot drift from the rules.
 */
import type { ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import type { Capability } from '../connector/contract.js';

export function annotationsFor(capability: Capability, title: string): ToolAnnotations {
  // Every tool reaches a live Intune tenant, whose devices change under it: an open world.
  switch (capability) {
    case 'READ':
      return { title, readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true };
    case 'PROPOSE':
      // Repeating a proposal within the cooldown is answered from memory, not sent again.
      return { title, readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true };
    case 'MUTATE':
      return { title, readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true };
  }
}
