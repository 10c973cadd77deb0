/** One PostgreSQL protocol message as a backend sends it: the type byte, a length that counts itself, the payload. */
export function protocolMessage(type: string, payload: Uint8Array): Buffer {
  const bytes = Buffer.alloc(5 + payload.length);
  bytes[0] = type.charCodeAt(0);
  bytes.writeInt32BE(4 + payload.length, 1);
  bytes.set(payload, 5);
  return bytes;
}
