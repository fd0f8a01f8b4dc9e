/**
 * Writes an entry body to a raw fd (from openat2) with Node's fs, without
 * wrapping the fd in a FileHandle that would close it.
 *
 * @module
 */
import { write } from "node:fs";

function writeAll(fd: number, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number) => {
      write(fd, buf, off, buf.length - off, null, (err, n) => {
        if (err) return reject(err);
        if (off + n < buf.length) step(off + n);
        else resolve();
      });
    };
    step(0);
  });
}

/** Writes every chunk of `body` to `fd`, coalescing small chunks into 1 MiB writes. */
export async function writeBody(fd: number, body: AsyncIterable<Buffer>): Promise<number> {
  let total = 0;
  let pending: Buffer[] = [];
  let pendingLen = 0;
  for await (const chunk of body) {
    pending.push(chunk);
    pendingLen += chunk.length;
    if (pendingLen >= 1 << 20) {
      await writeAll(fd, pending.length === 1 ? pending[0]! : Buffer.concat(pending));
      total += pendingLen;
      pending = [];
      pendingLen = 0;
    }
  }
  if (pendingLen > 0) {
    await writeAll(fd, pending.length === 1 ? pending[0]! : Buffer.concat(pending));
    total += pendingLen;
  }
  return total;
}
