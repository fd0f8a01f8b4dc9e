/**
 * Reading a raw fd (from openat2) in chunks without wrapping it in a
 * FileHandle.
 *
 * @module
 */
import { read } from "node:fs";
import { close } from "../native.js";

/**
 * Yields up to `size` bytes of `fd` from offset 0 in chunks of at most 1 MiB,
 * stopping early if the file is shorter, and closes the fd however the
 * consumer stops.
 */
export async function* readFdAndClose(fd: number, size: number): AsyncGenerator<Buffer> {
  try {
    let pos = 0;
    while (pos < size) {
      const want = Math.min(size - pos, 1 << 20);
      const buf = Buffer.allocUnsafe(want);
      const got = await new Promise<number>((res, rej) => read(fd, buf, 0, want, pos, (e, k) => (e ? rej(e) : res(k))));
      if (got === 0) return;
      pos += got;
      yield got === want ? buf : buf.subarray(0, got);
    }
  } finally {
    await close(fd);
  }
}
