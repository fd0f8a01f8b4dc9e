/**
 * A pull-based streaming tar reader, for tests: it reads the tars strata
 * exports, and it is the parser of the oracle apply engine (test/oracle/).
 * Product code reads tars natively (`native/archive/tar_header.h`).
 *
 * `for await (const entry of readTar(source))` yields one {@link TarEntry}
 * per file; the next entry is read only after the previous body has been
 * consumed (`entry.body()` or `entry.skip()`; an unconsumed body is skipped
 * automatically). PAX ('x') and GNU long-name ('L'/'K') records are merged
 * into the header; global PAX headers ('g') are ignored. The source is read
 * to its end, so a tee on it sees every byte (the diffID covers trailing
 * padding too).
 *
 * An optional {@link RawRecorder} sees every byte that is not file content
 * (header blocks, padding, end-of-archive and trailing bytes) and the size
 * of every body, in order: enough to re-assemble the exact archive later.
 *
 * @module
 */
import { BLOCK, padding, type TarHeader } from "../../src/archive/tar-header.js";
import { decodeBlock, decodePax, isZeroBlock, parsePaxTime, TarFormatError, typeFromFlag } from "./tar-decode.js";

/** Receives the archive's non-content bytes and content sizes in order. */
export interface RawRecorder {
  raw(bytes: Buffer): void;
  file(name: string, size: number): void;
}

/** One entry of {@link readTar}. */
export interface TarEntry {
  header: TarHeader;
  /** The body in chunks (only regular files have one). Consume fully or call skip(). */
  body(): AsyncGenerator<Buffer>;
  /** Reads the whole body into one Buffer (for small files). */
  readAll(): Promise<Buffer>;
  /**
   * The whole body, consumed, when it is already in memory (no await: most
   * small files arrive in the same chunk as their header); undefined when not.
   */
  readBuffered(): Buffer | undefined;
  skip(): Promise<void>;
}

const EMPTY = Buffer.alloc(0);

/** A chunk of a byte source as a Buffer, without a copy unless it is a string. */
export function toBuffer(chunk: Buffer | Uint8Array | string): Buffer {
  if (typeof chunk === "string") return Buffer.from(chunk);
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Byte queue over an async iterable source. */
class ByteQueue {
  #chunks: Buffer[] = [];
  #length = 0;
  #iter: AsyncIterator<Buffer | Uint8Array | string>;
  #done = false;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    this.#iter = source[Symbol.asyncIterator]();
  }

  get length(): number {
    return this.#length;
  }

  /** `fill(n)` without the promise when n bytes are buffered already (the common case). */
  ready(n: number): boolean | Promise<boolean> {
    return this.#length >= n || this.fill(n);
  }

  /** Ensures at least n bytes are buffered; false when the source ended first. */
  async fill(n: number): Promise<boolean> {
    while (this.#length < n && !this.#done) {
      const r = await this.#iter.next();
      if (r.done) {
        this.#done = true;
        break;
      }
      const buf = toBuffer(r.value);
      if (buf.length) {
        this.#chunks.push(buf);
        this.#length += buf.length;
      }
    }
    return this.#length >= n;
  }

  /** Takes exactly n buffered bytes (n ≤ length). */
  take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#length -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#length -= n;
    return out;
  }

  /** Takes up to n bytes that are already buffered, at least one chunk's worth. */
  takeSome(n: number): Buffer {
    const first = this.#chunks[0]!;
    return this.take(Math.min(n, first.length));
  }

  async drain(onBytes: (b: Buffer) => void): Promise<void> {
    for (;;) {
      if (this.#length > 0) onBytes(this.take(this.#length));
      if (this.#done) return;
      await this.fill(this.#length + 1);
      if (this.#length === 0 && this.#done) return;
    }
  }
}

function unexpectedEnd(what: string): TarFormatError {
  return new TarFormatError(`unexpected end of archive in ${what}`);
}

/**
 * Reads entries from an uncompressed tar stream.
 * @param source any async iterable of bytes (a Readable works)
 * @throws ERR_TAR_FORMAT for malformed archives, ERR_TAR_UNSUPPORTED for unknown entry types
 * @example
 * for await (const e of readTar(fs.createReadStream("layer.tar"))) console.log(e.header.name);
 */
export async function* readTar(
  source: AsyncIterable<Buffer | Uint8Array | string>,
  recorder?: RawRecorder,
): AsyncGenerator<TarEntry> {
  const q = new ByteQueue(source);
  const raw = (b: Buffer) => recorder?.raw(b);
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;

  const readMeta = async (size: number, what: string): Promise<Buffer> => {
    if (size > 16 << 20) throw new TarFormatError(`${what} record too large (${size} bytes)`);
    const total = size + padding(size);
    if (!(await q.ready(total))) throw unexpectedEnd(what);
    const b = q.take(total);
    raw(b);
    return b.subarray(0, size);
  };

  for (;;) {
    if (!(await q.ready(BLOCK))) {
      if (q.length === 0) break; // tolerate a missing end-of-archive marker
      throw unexpectedEnd("header");
    }
    const block = q.take(BLOCK);
    raw(block);
    if (isZeroBlock(block)) break;
    const h = decodeBlock(block);
    if (h.flag === "x") {
      for (const [k, v] of decodePax(await readMeta(h.size, "PAX header"))) pax.set(k, v);
      continue;
    }
    if (h.flag === "g") {
      await readMeta(h.size, "global PAX header");
      continue;
    }
    if (h.flag === "L" || h.flag === "K") {
      const b = await readMeta(h.size, "GNU long name");
      const end = b.indexOf(0);
      const s = b.toString("utf8", 0, end < 0 ? b.length : end);
      if (h.flag === "L") longName = s;
      else longLink = s;
      continue;
    }
    const header = mergeHeader(h, pax, longName, longLink);
    pax = new Map();
    longName = undefined;
    longLink = undefined;

    // Header-only types have no body whatever size they claim (as Go's archive/tar reads them).
    if (header.type !== "file") header.size = 0;
    const claimed = header.size;
    let remaining = claimed;
    let consumed = false;
    recorder?.file(header.name, claimed);

    const finishBody = async () => {
      const pad = padding(claimed);
      if (!(await q.ready(pad))) throw unexpectedEnd(`padding of "${header.name}"`);
      raw(q.take(pad));
    };
    async function* body(): AsyncGenerator<Buffer> {
      if (consumed) return;
      consumed = true;
      while (remaining > 0) {
        if (q.length === 0 && !(await q.fill(1))) throw unexpectedEnd(`body of "${header.name}"`);
        const chunk = q.takeSome(remaining);
        remaining -= chunk.length;
        yield chunk;
      }
      await finishBody();
    }
    const entry: TarEntry = {
      header,
      body,
      async readAll() {
        const parts: Buffer[] = [];
        for await (const c of body()) parts.push(c);
        return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      },
      readBuffered() {
        const pad = padding(claimed);
        if (consumed || q.length < remaining + pad) return undefined;
        consumed = true;
        const b = q.take(remaining);
        remaining = 0;
        raw(q.take(pad));
        return b;
      },
      async skip() {
        for await (const _ of body());
      },
    };
    yield entry;
    if (!consumed || remaining > 0) {
      if (entry.readBuffered() === undefined) await entry.skip();
    }
  }
  // Everything after the end marker (the second zero block, tar padding) belongs to the stream.
  await q.drain(raw);
}

function paxString(pax: Map<string, Buffer>, key: string): string | undefined {
  const v = pax.get(key);
  return v === undefined ? undefined : v.toString("utf8");
}

function paxNumber(pax: Map<string, Buffer>, key: string, fallback: number): number {
  const s = paxString(pax, key);
  if (s === undefined) return fallback;
  if (!/^\d+$/.test(s)) throw new TarFormatError(`invalid PAX ${key} "${s}"`);
  const v = Number(s);
  if (!Number.isSafeInteger(v)) throw new TarFormatError(`PAX ${key} too large`);
  return v;
}

function mergeHeader(
  h: ReturnType<typeof decodeBlock>,
  pax: Map<string, Buffer>,
  longName: string | undefined,
  longLink: string | undefined,
): TarHeader {
  const name = paxString(pax, "path") ?? longName ?? h.name;
  const xattrs = new Map<string, Buffer>();
  for (const [k, v] of pax) if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice(13), v);
  const mtimeStr = paxString(pax, "mtime");
  const atimeStr = paxString(pax, "atime");
  const header: TarHeader = {
    name,
    type: typeFromFlag(h.flag, name),
    mode: h.mode & 0o7777,
    uid: paxNumber(pax, "uid", h.uid),
    gid: paxNumber(pax, "gid", h.gid),
    uname: paxString(pax, "uname") ?? h.uname,
    gname: paxString(pax, "gname") ?? h.gname,
    size: paxNumber(pax, "size", h.size),
    mtime: mtimeStr !== undefined ? parsePaxTime(mtimeStr) : { sec: h.mtime, nsec: 0 },
    linkname: paxString(pax, "linkpath") ?? longLink ?? h.linkname,
    devmajor: h.devmajor,
    devminor: h.devminor,
    xattrs,
  };
  if (atimeStr !== undefined) header.atime = parsePaxTime(atimeStr);
  // A regular file whose name ends in "/" is a directory in old archives (V7).
  if (header.type === "file" && h.flag === "\0" && name.endsWith("/")) header.type = "dir";
  return header;
}
