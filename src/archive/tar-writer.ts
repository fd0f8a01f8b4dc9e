/**
 * Writes a tar stream from a sequence of entries: each header (PAX when
 * needed, see {@link encodeHeader}), its body and padding, then the two
 * zero blocks that end the archive, as Go's archive/tar does.
 *
 * @module
 */
import { Readable } from "node:stream";
import { BLOCK, encodeHeader, padding, type TarHeader } from "./tar-header.js";

/** One entry for {@link tarStream}: its header and, for a regular file, its content. */
export interface TarOutputEntry {
  header: TarHeader;
  /** File content; must yield exactly `header.size` bytes (shorter is zero-filled, longer is cut). */
  body?: AsyncIterable<Buffer> | Buffer;
}

/** Output is gathered into chunks of about this size: one stream write per chunk, not per header. */
const CHUNK = 1 << 20;

async function* encode(entries: AsyncIterable<TarOutputEntry>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let pending = 0;
  const add = (b: Buffer) => {
    parts.push(b);
    pending += b.length;
  };
  const take = () => {
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts, pending);
    parts = [];
    pending = 0;
    return out;
  };
  for await (const { header, body } of entries) {
    add(encodeHeader(header));
    if (header.type === "file" && header.size > 0) {
      let left = header.size;
      if (body) {
        const chunks = Buffer.isBuffer(body) ? [body] : body;
        for await (const chunk of chunks) {
          if (left <= 0) break;
          const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
          left -= part.length;
          add(part);
          if (pending >= CHUNK) yield take();
        }
      }
      while (left > 0) {
        const z = Buffer.alloc(Math.min(left, CHUNK));
        left -= z.length;
        add(z);
        if (pending >= CHUNK) yield take();
      }
      const pad = padding(header.size);
      if (pad) add(Buffer.alloc(pad));
    }
    if (pending >= CHUNK) yield take();
  }
  add(Buffer.alloc(BLOCK * 2));
  yield take();
}

/**
 * A Readable tar of `entries`. The consumer must read or destroy it;
 * destroying it stops the entry source.
 */
export function tarStream(entries: AsyncIterable<TarOutputEntry>): Readable {
  return Readable.from(encode(entries), { objectMode: false, highWaterMark: 1 << 20 });
}
