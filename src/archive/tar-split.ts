/**
 * Pristine layers: keep what is needed to re-create a layer tar byte for
 * byte after it has been applied, without keeping the tar (the idea of
 * tar-split). While `applyLayer` reads the archive, a
 * {@link TarSplitRecorder} stores every byte that is not file content —
 * headers, PAX and GNU records, padding, the end marker and whatever
 * trails it — and, in order, the name and size of every file body. File
 * contents come back later from the layer's directory.
 *
 * Index format (gzip'd): the magic `STS1`, then records
 * `0x01 <varint n> <n raw bytes>` and `0x02 <varint size> <varint len> <len bytes of name>`,
 * in archive order. Consecutive raw bytes are merged into one record.
 *
 * Limits: content is found by entry name, so a layer that writes the same
 * name twice, or an AUFS `.wh..wh.plnk/` body (never stored on disk), cannot
 * be re-assembled; {@link assembleTar} then fails with ERR_DIGEST_MISMATCH
 * (or the file's error) instead of producing a wrong tar silently.
 *
 * @example
 * // at register time
 * const rec = new TarSplitRecorder();
 * await applyLayer(dir, tarStream, { recorder: rec });
 * await writeFile(indexPath, await rec.finish());
 * // at export time
 * const files = await openInLayer(dir);
 * try {
 *   await pipeline(assembleTar(await readFile(indexPath), files.open, { digest: diffID }), out);
 * } finally {
 *   await files.close();
 * }
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { createGzip, gunzipSync } from "node:zlib";
import { DigestMismatchError, InvalidArgumentError } from "../errors.js";
import { C, close, openat2 } from "../native.js";
import { readFdAndClose } from "../util/read-fd.js";
import { cleanEntryPath } from "./paths.js";

const MAGIC = Buffer.from("STS1");
const RAW = 0x01;
const FILE = 0x02;
/** Records are gathered to this many bytes before one gzip write. */
const FLUSH_AT = 1 << 20;

/**
 * Takes the tar-split index records of an archive as the apply engine
 * (`native/apply/tar_apply.h`) writes them, in archive order: already encoded
 * in the index format above, naming `files` bodies.
 */
export interface TarRecorder {
  records(encoded: Buffer, files: number): void;
}

/**
 * A {@link TarRecorder} that builds a tar-split index. Pass it to
 * `applyLayer` (`recorder` option), let the archive be read to its end, then
 * call {@link finish} once. The index is compressed as it grows, at gzip
 * level 1.
 */
export class TarSplitRecorder implements TarRecorder {
  #gzip = createGzip({ level: 1 });
  #out: Buffer[] = [];
  #pending: Buffer[] = [MAGIC];
  #pendingBytes = MAGIC.length;
  #files = 0;
  #done = false;

  constructor() {
    this.#gzip.on("data", (c: Buffer) => this.#out.push(c));
  }

  /** Number of file bodies recorded so far. */
  get files(): number {
    return this.#files;
  }

  /** Takes encoded records (see {@link TarRecorder}). */
  records(encoded: Buffer, files: number): void {
    if (encoded.length === 0) return;
    this.#pending.push(encoded);
    this.#pendingBytes += encoded.length;
    this.#files += files;
    if (this.#pendingBytes >= FLUSH_AT) this.#gzip.write(this.#take());
  }

  #take(): Buffer {
    const b = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    return b;
  }

  /**
   * Ends the recording.
   * @returns the gzip'd index, to be stored beside the layer
   * @throws ERR_INVALID_ARGUMENT when called twice
   */
  async finish(): Promise<Buffer> {
    if (this.#done)
      throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", "Cannot finish the tar-split index: already finished");
    this.#done = true;
    this.#gzip.end(this.#take());
    await new Promise<void>((resolve, reject) => {
      this.#gzip.once("end", resolve);
      this.#gzip.once("error", reject);
    });
    return Buffer.concat(this.#out);
  }
}

/** One record of an index: raw bytes, or a file body to fetch by name. */
export type IndexRecord = { raw: Buffer } | { name: string; size: number };

/**
 * Decodes an index into its records (for inspection and for {@link assembleTar}).
 * @throws ERR_TAR_SPLIT_INDEX when the index is not one strata wrote or is cut short
 */
export function* indexRecords(index: Buffer): Generator<IndexRecord> {
  const bad = (why: string) =>
    new InvalidArgumentError("ERR_TAR_SPLIT_INDEX", `Cannot read the tar-split index: ${why}`);
  let buf: Buffer;
  try {
    buf = gunzipSync(index);
  } catch (err) {
    throw bad(`not gzip (${(err as Error).message})`);
  }
  if (!buf.subarray(0, 4).equals(MAGIC)) throw bad("bad magic");
  let off = 4;
  const uvarint = (): number => {
    let n = 0;
    let mul = 1;
    for (;;) {
      if (off >= buf.length) throw bad("truncated");
      const b = buf[off++]!;
      n += (b & 0x7f) * mul;
      if (!(b & 0x80)) return n;
      mul *= 128;
      if (mul > 2 ** 56) throw bad("number too large");
    }
  };
  while (off < buf.length) {
    const kind = buf[off++];
    if (kind === RAW) {
      const n = uvarint();
      if (off + n > buf.length) throw bad("truncated raw record");
      yield { raw: buf.subarray(off, off + n) };
      off += n;
    } else if (kind === FILE) {
      const size = uvarint();
      const len = uvarint();
      if (off + len > buf.length) throw bad("truncated name");
      yield { name: buf.toString("utf8", off, off + len), size };
      off += len;
    } else {
      throw bad(`unknown record type ${kind}`);
    }
  }
}

/**
 * Opens a file's content for re-assembly: `name` is the entry name as in
 * the archive, `size` the recorded size. The returned iterable is read up
 * to `size` bytes and then closed (its `return()` is called).
 */
export type OpenFile = (name: string, size: number) => Promise<AsyncIterable<Buffer>>;

/**
 * An {@link OpenFile} over a layer directory: every name is cleaned and
 * opened with openat2(RESOLVE_IN_ROOT, O_NOFOLLOW), so a symlink planted in
 * the layer can never make re-assembly read a file outside it.
 * @returns the opener and a `close` for the directory fd (call it when done)
 * @throws ERR_BREAKOUT (from `open`) for names that leave the root
 */
export async function openInLayer(dir: string): Promise<{ open: OpenFile; close(): Promise<void> }> {
  const rootFd = await openat2(C.AT_FDCWD, dir, C.O_PATH | C.O_DIRECTORY);
  return {
    async open(name: string, size: number) {
      const rel = cleanEntryPath(name);
      const fd = await openat2(rootFd, rel, C.O_RDONLY | C.O_NOFOLLOW, 0, C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS);
      return readFdAndClose(fd, size);
    },
    close: () => close(rootFd),
  };
}

/** Options for {@link assembleTar}. */
export interface AssembleOptions {
  /** Expected sha256 of the whole tar, `sha256:<hex>` or `<hex>` (a diffID). Checked at the end. */
  digest?: string;
}

async function* assemble(index: Buffer, openFile: OpenFile, opts: AssembleOptions): AsyncGenerator<Buffer> {
  const hash = createHash("sha256");
  for (const rec of indexRecords(index)) {
    if ("raw" in rec) {
      hash.update(rec.raw);
      yield rec.raw;
      continue;
    }
    let left = rec.size;
    const body = await openFile(rec.name, rec.size);
    const it = body[Symbol.asyncIterator]();
    try {
      while (left > 0) {
        const r = await it.next();
        if (r.done) break;
        const chunk = r.value.length > left ? r.value.subarray(0, left) : r.value;
        left -= chunk.length;
        hash.update(chunk);
        yield chunk;
      }
    } finally {
      await it.return?.();
    }
    if (left > 0) {
      throw new DigestMismatchError(
        `Cannot re-assemble the layer: "${rec.name}" has ${rec.size - left} bytes, the layer had ${rec.size}`,
      );
    }
  }
  if (opts.digest !== undefined) {
    const want = opts.digest.replace(/^sha256:/, "");
    const got = hash.digest("hex");
    if (got !== want) throw new DigestMismatchError(`Cannot re-assemble the layer: sha256 is ${got}, expected ${want}`);
  }
}

/**
 * Re-creates the original tar from a tar-split index and the files of the
 * applied layer. With `digest`, the stream fails with ERR_DIGEST_MISMATCH
 * at its end (after the last byte) unless the bytes hash to it, so a
 * consumer must treat the data as good only when the stream ends cleanly.
 * The caller consumes or destroys the stream; destroying it closes the
 * file being read.
 * @param index the gzip'd index from {@link TarSplitRecorder.finish}
 * @param openFile where file contents come from, usually {@link openInLayer}
 * @throws (as stream errors) ERR_DIGEST_MISMATCH, ERR_TAR_SPLIT_INDEX, ERR_BREAKOUT, errno codes of openFile
 */
export function assembleTar(index: Buffer, openFile: OpenFile, opts: AssembleOptions = {}): Readable {
  return Readable.from(assemble(index, openFile, opts), { objectMode: false, highWaterMark: 1 << 20 });
}
