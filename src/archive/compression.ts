/**
 * Compression detection by magic number and decompression streams.
 * gzip uses Node's zlib; zstd, bzip2 and xz go through the system tools.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { PassThrough, type Readable, type Transform } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import { InvalidArgumentError } from "../errors.js";

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
  (async () => {
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
export async function decompress(input: Readable): Promise<{ stream: Readable; compression: Compression }> {
  const { head, stream } = await peek(input, 10);
  const compression = detectCompression(head);
  switch (compression) {
    case "none":
      return { stream, compression };
    case "gzip": {
      const gunzip = createGunzip({ chunkSize: 1 << 20 });
      stream.on("error", (err) => gunzip.destroy(err));
      return { stream: stream.pipe(gunzip), compression };
    }
    case "zstd":
      return { stream: toolStream("zstd", ["-d", "-c", "-q"], stream), compression };
    case "bzip2":
      return { stream: toolStream("bzip2", ["-d", "-c", "-q"], stream), compression };
    case "xz":
      return { stream: toolStream("xz", ["-d", "-c", "-q"], stream), compression };
  }
}

/** A compressing transform for export: gzip (zlib) or zstd (system tool). */
export function compressStream(kind: "gzip" | "zstd", level?: number): Transform | Readable {
  if (kind === "gzip") return createGzip({ level: level ?? 6, chunkSize: 1 << 20 });
  throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot compress: unsupported compression "${kind}"`);
}
