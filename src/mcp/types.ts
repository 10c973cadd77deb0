/** What the MCP server needs of the connector: the scope filter for listing, and invoke for every call. */
import type { IntuneConnector } from '../connector/index.js';

export type McpConnector = Pick<IntuneConnector, 'permittedOperations' | 'invoke'>;
