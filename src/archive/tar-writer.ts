/**
 * Writes a tar stream from a sequence of entries: each header (PAX when
 * needed, see {@link encodeHeader}), its body and padding, then the two
 * zero blocks that end the archive, as Go's archive/tar does.
 *
 * @module
 */
import { Readable } from "node:stream";
import { BLOCK, encodeHeader, padding, type TarHeader } from "./tar-header.js";

export interface TarOutputEntry {
  header: TarHeader;
  /** File content; must yield exactly `header.size` bytes (shorter is zero-filled, longer is cut). */
  body?: AsyncIterable<Buffer> | Buffer;
}

async function* encode(entries: AsyncIterable<TarOutputEntry>): AsyncGenerator<Buffer> {
  for await (const { header, body } of entries) {
    yield encodeHeader(header);
    if (header.type !== "file" || header.size === 0) continue;
    let left = header.size;
    if (body) {
      const chunks = Buffer.isBuffer(body) ? [body] : body;
      for await (const chunk of chunks) {
        if (left <= 0) break;
        const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
        left -= part.length;
        yield part;
      }
    }
    while (left > 0) {
      const z = Buffer.alloc(Math.min(left, 1 << 20));
      left -= z.length;
      yield z;
    }
    const pad = padding(header.size);
    if (pad) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(BLOCK * 2);
}

/**
 * A Readable tar of `entries`. The consumer must read or destroy it;
 * destroying it stops the entry source.
 */
export function tarStream(entries: AsyncIterable<TarOutputEntry>): Readable {
  return Readable.from(encode(entries), { objectMode: false, highWaterMark: 1 << 20 });
}
