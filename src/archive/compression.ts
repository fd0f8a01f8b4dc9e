/**
 * Compression detection by magic number, decompression and compression
 * streams.
 *
 * gzip is inflated by ISA-L and zstd (de)compressed by libzstd in the native
 * addon, on each codec's own thread with the next step already queued, so
 * decompression never waits for the main thread. Without the native
 * codecs (a build without the libraries, or `{ nativeCodecs: false }`) gzip
 * falls back to Node's zlib and zstd to the `zstd` tool. bzip2 and xz use
 * the system tools. Export compresses gzip with zlib (levels 1-9) and zstd
 * with libzstd (levels 1-19).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { PassThrough, type Readable, Transform, type TransformCallback } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import { InvalidArgumentError } from "../errors.js";
import { type CodecKind, createNativeCodec, nativeCodecs } from "../native.js";

/** True when this build of the addon provides `kind`. */
export function hasNativeCodec(kind: CodecKind): boolean {
  return nativeCodecs().includes(kind);
}

/** Options of {@link decompress} and {@link compressStream}. */
export interface CodecOptions {
  /** Use the addon's codecs where it has them (the default); false: Node's zlib and the `zstd` tool. */
  nativeCodecs?: boolean;
}

/** Input gathered before one native step: network chunks are ~64 KiB, and a step each costs a thread-pool round trip. */
const STEP_INPUT = 1 << 20;

/** Steps queued on the codec's thread at once: the next input is there when a step ends. */
const STEPS_IN_FLIGHT = 2;

/**
 * A Transform over one native codec: input is gathered to 1 MiB, then one
 * step is queued on the codec's own thread. Up to STEPS_IN_FLIGHT steps are
 * queued at once, so the codec goes straight on to the next input instead
 * of waiting for this thread to take the previous output; outputs are
 * pushed in order as steps settle.
 *
 * Memory is bounded whatever the compression ratio: a step produces at most
 * about 4 MiB (native/codec/codec.cc). When one stops there (`more`), no
 * new input is taken until the codec has given out what it holds, and the
 * step that asks for it is queued only when the reader wants data (the
 * readable side is below its 4 MiB mark). So a 66 KB zstd frame of 2 GiB of
 * zeros comes out 4 MiB at a time, as fast as the consumer takes it.
 */
class NativeCodecStream extends Transform {
  #codec: ReturnType<typeof createNativeCodec>;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #inFlight = 0;
  /** The last settled step stopped at its output limit: the codec holds output back. */
  #more = false;
  /** A step to go on with that output is due once the reader wants more. */
  #resumeOnRead = false;
  /** _flush was called: every step from now on is an end step. */
  #ending = false;
  /** The callback of the input that found the queue full: called when a step settles. */
  #blocked: TransformCallback | undefined;
  /** _flush's callback, once the end step is queued. */
  #flushed: TransformCallback | undefined;
  #failed = false;

  constructor(kind: CodecKind, level?: number) {
    super({ readableHighWaterMark: 4 << 20, writableHighWaterMark: 1 << 20 });
    this.#codec = createNativeCodec(kind, level);
  }

  /** Queues a step: input, `null` (the end), or `undefined` (go on with held-back output). */
  #step(chunk: Buffer | null | undefined): void {
    this.#inFlight++;
    this.#resumeOnRead = false; // any step goes on with held-back output first
    this.#codec.transform(chunk).then(
      (r) => {
        this.#inFlight--;
        if (this.#failed) return;
        let room = true;
        for (const b of r.chunks) room = this.push(b);
        this.#more = r.more;
        this.#next(room);
      },
      (err: Error) => {
        this.#inFlight--;
        if (this.#failed) return;
        this.#failed = true;
        this.#fail(new InvalidArgumentError("ERR_DECOMPRESS", `Cannot decompress the layer: ${err.message}`));
      },
    );
  }

  /** After a step settled: go on with held-back output, or let input through, or end. */
  #next(room: boolean): void {
    if (this.#more) {
      if (this.#inFlight > 0) return; // a queued step goes on with it
      if (room) this.#step(this.#ending ? null : undefined);
      else this.#resumeOnRead = true;
      return;
    }
    const blocked = this.#blocked;
    this.#blocked = undefined;
    blocked?.();
    if (this.#flushed && this.#inFlight === 0) {
      const cb = this.#flushed;
      this.#flushed = undefined;
      cb();
    }
  }

  #fail(err: Error): void {
    const cb = this.#blocked ?? this.#flushed;
    this.#blocked = undefined;
    this.#flushed = undefined;
    if (cb) cb(err);
    else this.destroy(err);
  }

  override _read(size: number): void {
    super._read(size);
    if (this.#resumeOnRead && !this.#failed) this.#step(this.#ending ? null : undefined);
  }

  /** The gathered input as one buffer (empty when there is none). */
  #take(): Buffer {
    const b = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    return b;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#failed) return cb(); // the error is on its way
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    this.#pending.push(b);
    this.#pendingBytes += b.length;
    if (this.#pendingBytes < STEP_INPUT) return cb();
    this.#step(this.#take());
    if (this.#inFlight < STEPS_IN_FLIGHT && !this.#more) cb();
    else this.#blocked = cb;
  }

  override _flush(cb: TransformCallback): void {
    if (this.#failed) return cb();
    this.#ending = true;
    if (this.#pendingBytes > 0) this.#step(this.#take());
    this.#step(null);
    this.#flushed = cb;
  }
}

/** A streaming decompressor for `kind`, native when available and allowed. */
function decompressor(kind: "gzip" | "zstd", opts: CodecOptions): Transform | undefined {
  if (opts.nativeCodecs === false) return undefined;
  if (kind === "gzip" && hasNativeCodec("gunzip")) return new NativeCodecStream("gunzip");
  if (kind === "zstd" && hasNativeCodec("zstd-decompress")) return new NativeCodecStream("zstd-decompress");
  return undefined;
}

function chain(input: Readable, t: Transform): Readable {
  input.on("error", (err) => t.destroy(err));
  return input.pipe(t);
}

/** The compressions a layer may come in, by the names Docker's media types use. */
export type Compression = "none" | "gzip" | "zstd" | "bzip2" | "xz";

/** Detects the compression of a stream's first bytes; an empty prefix is "none". */
export function detectCompression(head: Buffer): Compression {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  if (head.length >= 4 && (head.readUInt32LE(0) & 0xfffffff0) === 0x184d2a50) return "zstd";
  if (head.length >= 3 && head.toString("latin1", 0, 3) === "BZh") return "bzip2";
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return "xz";
  return "none";
}

/** Reads up to n bytes from the start of a stream and returns them plus a stream of everything. */
async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let have = 0;
  const iter = input[Symbol.asyncIterator]();
  while (have < n) {
    const r = await iter.next();
    if (r.done) break;
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    chunks.push(b);
    have += b.length;
  }
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  for (const c of chunks) out.write(c);
  // The pump ends the stream or destroys it with the error: nothing to await.
  void (async () => {
    try {
      for (;;) {
        const r = await iter.next();
        if (r.done) break;
        if (!out.write(r.value)) await new Promise((res) => out.once("drain", res));
      }
      out.end();
    } catch (err) {
      out.destroy(err as Error);
    }
  })();
  const head = Buffer.concat(chunks);
  return { head: head.subarray(0, n), stream: out };
}

function toolStream(cmd: string, args: string[], input: Readable): Readable {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  input.pipe(child.stdin);
  child.stdin.on("error", () => {});
  const out = new PassThrough();
  child.stdout.pipe(out, { end: false });
  child.on("error", (err) => out.destroy(err));
  child.on("close", (code) => {
    if (code === 0) out.end();
    else
      out.destroy(
        new InvalidArgumentError(
          "ERR_DECOMPRESS",
          `Cannot decompress the layer: ${cmd} exited ${code}: ${stderr.trim()}`,
        ),
      );
  });
  input.on("error", (err) => {
    child.kill();
    out.destroy(err);
  });
  out.on("close", () => child.kill());
  return out;
}

/**
 * Returns the uncompressed stream of `input`, whatever its compression.
 * The caller consumes the result; errors in `input` propagate to it.
 */
export async function decompress(
  input: Readable,
  opts: CodecOptions = {},
): Promise<{ stream: Readable; compression: Compression }> {
  const { head, stream } = await peek(input, 10);
  const compression = detectCompression(head);
  switch (compression) {
    case "none":
      return { stream, compression };
    case "gzip":
      return { stream: chain(stream, decompressor("gzip", opts) ?? createGunzip({ chunkSize: 1 << 20 })), compression };
    case "zstd": {
      const native = decompressor("zstd", opts);
      return { stream: native ? chain(stream, native) : toolStream("zstd", ["-d", "-c", "-q"], stream), compression };
    }
    case "bzip2":
      return { stream: toolStream("bzip2", ["-d", "-c", "-q"], stream), compression };
    case "xz":
      return { stream: toolStream("xz", ["-d", "-c", "-q"], stream), compression };
  }
}

/** Default export levels: gzip 6 (gzip's own default), zstd 3 (zstd's). */
export const DEFAULT_LEVEL = Object.freeze({ gzip: 6, zstd: 3 });

/**
 * A compressing Transform for export: gzip through zlib (levels 1-9) or zstd
 * through libzstd (levels 1-19; with a checksum). Without native zstd, the
 * `zstd` tool compresses instead (write to its stdin, read from its stdout).
 * @throws ERR_INVALID_ARGUMENT for another kind or a level out of range
 */
export function compressStream(kind: "gzip" | "zstd", level?: number, opts: CodecOptions = {}): Transform {
  const lvl = level ?? DEFAULT_LEVEL[kind as keyof typeof DEFAULT_LEVEL];
  const range = kind === "gzip" ? [1, 9] : [1, 19];
  if (kind !== "gzip" && kind !== "zstd")
    throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot compress: unsupported compression "${kind}"`);
  if (!Number.isInteger(lvl) || lvl < range[0]! || lvl > range[1]!)
    throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot compress: ${kind} level out of range "${lvl}"`);
  if (kind === "gzip") return createGzip({ level: lvl, chunkSize: 1 << 20 });
  if (opts.nativeCodecs !== false && hasNativeCodec("zstd-compress"))
    return new NativeCodecStream("zstd-compress", lvl);
  return toolTransform("zstd", [`-${lvl}`, "-c", "-q"]);
}

/** A Transform that pipes through a system tool. */
function toolTransform(cmd: string, args: string[]): Transform {
  const input = new PassThrough();
  const out = toolStream(cmd, args, input);
  const t = new Transform({
    transform(chunk, _enc, cb) {
      if (input.write(chunk)) cb();
      else input.once("drain", () => cb());
    },
    flush(cb) {
      input.end();
      out.on("end", () => cb());
    },
  });
  out.on("data", (d: Buffer) => t.push(d));
  out.on("error", (err) => t.destroy(err));
  return t;
}
