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
 * in archive order. Consecutive raw bytes are merged into one record of up
 * to 1 MiB.
 *
 * Memory: the index is written to a stream (the layer store's index file)
 * as it is made, with backpressure, and read back as a stream, so neither
 * recording nor re-assembly holds it whole, however many bytes trail the
 * end marker or fill PAX records.
 *
 * Limits: content is found by entry name, so a layer that writes the same
 * name twice, or an AUFS `.wh..wh.plnk/` body (never stored on disk), cannot
 * be re-assembled; {@link assembleTar} then fails with ERR_DIGEST_MISMATCH
 * (or the file's error) instead of producing a wrong tar silently.
 *
 * @example
 * // at register time
 * const rec = new TarSplitRecorder(createWriteStream(indexPath));
 * await applyLayer(dir, tarStream, { recorder: rec });
 * await rec.finish();
 * // at export time
 * const files = await openInLayer(dir);
 * try {
 *   await pipeline(assembleTar(createReadStream(indexPath), files.open, { digest: diffID }), out);
 * } finally {
 *   await files.close();
 * }
 *
 * @module
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
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
 * in the index format above, naming `files` bodies. A returned promise asks
 * the caller to wait before handing over more (backpressure); applyLayer
 * does.
 */
export interface TarRecorder {
  records(encoded: Buffer, files: number): void | Promise<void>;
}

/**
 * A {@link TarRecorder} that writes a tar-split index to `sink`, gzip'd at
 * level 1 as it grows. Pass it to `applyLayer` (`recorder` option), let the
 * archive be read to its end, then call {@link finish} once; or
 * {@link abort} it when the apply failed. `records` asks the caller to wait
 * while the gzip stream or the sink is behind, so memory stays bounded
 * whatever the size of the index.
 */
export class TarSplitRecorder implements TarRecorder {
  #gzip = createGzip({ level: 1 });
  #written: Promise<void>;
  #failure: Error | undefined;
  #pending: Buffer[] = [MAGIC];
  #pendingBytes = MAGIC.length;
  #files = 0;
  #done = false;
  #drained: Promise<void> | undefined;

  /** @param sink where the gzip'd index goes (a file stream); ended by {@link finish} */
  constructor(sink: Writable) {
    this.#written = pipeline(this.#gzip, sink);
    this.#written.catch((err: Error) => {
      this.#failure ??= err;
    });
  }

  /** Number of file bodies recorded so far. */
  get files(): number {
    return this.#files;
  }

  /** Takes encoded records (see {@link TarRecorder}); resolves when the recorder can take more. */
  records(encoded: Buffer, files: number): void | Promise<void> {
    if (this.#failure) throw this.#failure;
    if (encoded.length === 0) return;
    this.#pending.push(encoded);
    this.#pendingBytes += encoded.length;
    this.#files += files;
    if (this.#pendingBytes < FLUSH_AT) return;
    if (this.#gzip.write(this.#take())) return;
    // One 'drain' wait shared by every caller until it comes (or the stream fails or ends).
    this.#drained ??= once(this.#gzip, "drain").then(
      () => {
        this.#drained = undefined;
      },
      () => undefined,
    );
    return Promise.race([this.#drained, this.#written]);
  }

  #take(): Buffer {
    const b = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    return b;
  }

  /**
   * Ends the recording and waits until the sink has taken all of it.
   * @throws ERR_INVALID_ARGUMENT when called twice; the sink's error when it failed
   */
  async finish(): Promise<void> {
    if (this.#done)
      throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", "Cannot finish the tar-split index: already finished");
    this.#done = true;
    this.#gzip.end(this.#take());
    await this.#written;
  }

  /** Gives up the recording (the apply failed): the gzip stream and the sink are destroyed. */
  abort(): void {
    this.#done = true;
    this.#failure ??= new Error("tar-split recording aborted");
    this.#gzip.destroy();
  }
}

/** One record of an index: raw bytes, or a file body to fetch by name. */
export type IndexRecord = { raw: Buffer } | { name: string; size: number };

/** Names longer than this in an index are refused (PAX records are limited to 16 MiB). */
const MAX_NAME = 16 << 20;

/** Reads a byte stream in exact amounts (for the index's records). */
class ByteReader {
  #it: AsyncIterator<Buffer>;
  #buf: Buffer = Buffer.alloc(0);

  constructor(source: AsyncIterable<Buffer>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  /** At least one buffered byte, or false at the end of the stream. */
  async #fill(): Promise<boolean> {
    while (this.#buf.length === 0) {
      const r = await this.#it.next();
      if (r.done) return false;
      this.#buf = r.value;
    }
    return true;
  }

  /** The next byte, or undefined at the end. */
  async byte(): Promise<number | undefined> {
    if (!(await this.#fill())) return undefined;
    const b = this.#buf[0]!;
    this.#buf = this.#buf.subarray(1);
    return b;
  }

  /** Up to `n` bytes (at least one), or undefined at the end. */
  async some(n: number): Promise<Buffer | undefined> {
    if (!(await this.#fill())) return undefined;
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }

  /** Exactly `n` bytes, or undefined when the stream ends first. */
  async exact(n: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    for (let left = n; left > 0;) {
      const b = await this.some(left);
      if (!b) return undefined;
      parts.push(b);
      left -= b.length;
    }
    return Buffer.concat(parts, n);
  }
}

/**
 * Decodes an index into its records, as a stream: raw records come in
 * pieces of at most one decompressed chunk, so an index is never held
 * whole (for inspection, and for {@link assembleTar}).
 * @param index the gzip'd index: a Buffer or a stream of its bytes (a file)
 * @throws ERR_TAR_SPLIT_INDEX when the index is not one strata wrote or is cut short
 */
export async function* indexRecords(index: Buffer | AsyncIterable<Buffer>): AsyncGenerator<IndexRecord> {
  const bad = (why: string) =>
    new InvalidArgumentError("ERR_TAR_SPLIT_INDEX", `Cannot read the tar-split index: ${why}`);
  const gunzip = createGunzip();
  const fed = pipeline(Buffer.isBuffer(index) ? Readable.from([index]) : index, gunzip).catch((err: Error) => err);
  const r = new ByteReader(gunzip);
  const uvarint = async (): Promise<number> => {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = await r.byte();
      if (b === undefined) throw bad("truncated");
      n += (b & 0x7f) * mul;
      if (!(b & 0x80)) return n;
      mul *= 128;
      if (mul > 2 ** 56) throw bad("number too large");
    }
  };
  try {
    const magic = await r.exact(MAGIC.length);
    if (!magic?.equals(MAGIC)) throw bad("bad magic");
    for (;;) {
      const kind = await r.byte();
      if (kind === undefined) break;
      if (kind === RAW) {
        for (let n = await uvarint(); n > 0;) {
          const piece = await r.some(n);
          if (!piece) throw bad("truncated raw record");
          n -= piece.length;
          yield { raw: piece };
        }
      } else if (kind === FILE) {
        const size = await uvarint();
        const len = await uvarint();
        if (len > MAX_NAME) throw bad("name too long");
        const name = await r.exact(len);
        if (!name) throw bad("truncated name");
        yield { name: name.toString("utf8"), size };
      } else {
        throw bad(`unknown record type ${kind}`);
      }
    }
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw bad(`not gzip (${(err as Error).message})`); // the gunzip stream's error
  } finally {
    gunzip.destroy();
  }
  const failed = await fed;
  if (failed instanceof Error) throw bad(`not gzip (${failed.message})`);
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

async function* assemble(
  index: Buffer | AsyncIterable<Buffer>,
  openFile: OpenFile,
  opts: AssembleOptions,
): AsyncGenerator<Buffer> {
  const hash = createHash("sha256");
  for await (const rec of indexRecords(index)) {
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
 * @param index the gzip'd index a {@link TarSplitRecorder} wrote: a Buffer, or a stream of it (read as needed)
 * @param openFile where file contents come from, usually {@link openInLayer}
 * @throws (as stream errors) ERR_DIGEST_MISMATCH, ERR_TAR_SPLIT_INDEX, ERR_BREAKOUT, errno codes of openFile
 */
export function assembleTar(
  index: Buffer | AsyncIterable<Buffer>,
  openFile: OpenFile,
  opts: AssembleOptions = {},
): Readable {
  return Readable.from(assemble(index, openFile, opts), { objectMode: false, highWaterMark: 1 << 20 });
}
