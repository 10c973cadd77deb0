/**
 * SHA-256 of many 64-byte inputs in one native call, for verify's outer hash.
 *
 * A row's chain hash is SHA-256(prev_hash || SHA-256(body)): the outer hash reads exactly 64
 * bytes, and with the stored prev_hash of each row those inputs do not depend on one another, so a
 * range's outer hashes can be taken together. One node:crypto call per 64-byte input costs
 * several times the hashing itself (the call, a digest context, a string back); @chainsafe/hashtree
 * hashes a whole range of them per call with the CPU's SHA extensions (SHA-NI, AVX2, NEON) and
 * answers the same bytes.
 *
 * Loaded once per thread and compared with node:crypto on fixed inputs before it is trusted. Where
 * it has no prebuilt binding for the platform, or disagrees, `pairHasher` is null and verify hashes
 * row by row with node:crypto, as it always could. Either way the hashes are compared with the
 * stored ones, and a row that fails is judged again row by row with node:crypto (verify-copy.ts).
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

/** Hashes input (n × 64 bytes) into output (n × 32 bytes): digest i of input bytes [64i, 64i + 64). */
export type PairHasher = (input: Uint8Array, output: Uint8Array) => void;

/** Inputs the hasher must agree on with node:crypto: counts that cover its one-at-a-time and wide (4, 8, 16 lane) paths. */
const SELF_TEST_COUNTS = [1, 3, 4, 8, 17];

function selfTest(hasher: PairHasher): boolean {
  for (const count of SELF_TEST_COUNTS) {
    const input = new Uint8Array(64 * count);
    for (let i = 0; i < input.length; i++) input[i] = (i * 131 + count * 7) & 0xff;
    const output = new Uint8Array(32 * count);
    hasher(input, output);
    for (let k = 0; k < count; k++) {
      const expected = crypto.hash('sha256', input.subarray(64 * k, 64 * k + 64), 'buffer') as unknown as Buffer;
      if (!expected.equals(output.subarray(32 * k, 32 * k + 32))) return false;
    }
  }
  return true;
}

function load(): PairHasher | null {
  try {
    const { hashInto } = createRequire(import.meta.url)('@chainsafe/hashtree') as { hashInto: PairHasher };
    return selfTest(hashInto) ? hashInto : null;
  } catch {
    return null;
  }
}

/** The native batch hasher for this platform, or null (node:crypto, row by row). */
export const pairHasher: PairHasher | null = load();
