/** Native ISA-L gzip and libzstd codecs against the system gzip and zstd tools, and the zlib fallback. */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { Gunzip } from "node:zlib";
import test from "ava";
import { compressStream, decompress, hasNativeCodec } from "./compression.js";

/** Compressible but not trivial: text-like runs with random bytes mixed in. */
function sample(size: number): Buffer {
  const words = Buffer.from("const return function strata layer tar gzip zstd whiteout opaque ");
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) {
    if ((i / 4096) % 7 === 3) randomBytes(4096).copy(out, i);
    else for (let j = i; j < Math.min(i + 4096, size); j++) out[j] = words[(j * 31 + (j >> 9)) % words.length]!;
  }
  return out;
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Feeds `buf` in small chunks, so codec state crosses many chunk boundaries. */
function feed(buf: Buffer, chunk = 64 << 10): Readable {
  async function* gen() {
    for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
  }
  return Readable.from(gen(), { objectMode: false });
}

const data = sample(9 << 20);

test("native codecs are built (ISA-L gunzip, zstd both ways)", (t) => {
  t.true(hasNativeCodec("gunzip"));
  t.true(hasNativeCodec("zstd-decompress"));
  t.true(hasNativeCodec("zstd-compress"));
});

test("decompress() inflates `gzip -6` output through ISA-L, byte for byte", async (t) => {
  const gz = execFileSync("gzip", ["-6", "-c"], { input: data, maxBuffer: 64 << 20 });
  const { stream, compression } = await decompress(feed(gz));
  t.is(compression, "gzip");
  t.true((await collect(stream)).equals(data));
});

test("decompress() reads concatenated gzip members as one stream", async (t) => {
  const a = execFileSync("gzip", ["-1", "-c"], { input: data.subarray(0, 3 << 20), maxBuffer: 64 << 20 });
  const b = execFileSync("gzip", ["-9", "-c"], { input: data.subarray(3 << 20), maxBuffer: 64 << 20 });
  const { stream } = await decompress(feed(Buffer.concat([a, b]), 1000));
  t.true((await collect(stream)).equals(data));
});

test("decompress() rejects truncated and corrupt gzip with ERR_DECOMPRESS", async (t) => {
  const gz = execFileSync("gzip", ["-c"], { input: data, maxBuffer: 64 << 20 });
  const truncated = await decompress(feed(gz.subarray(0, gz.length - 100)));
  await t.throwsAsync(collect(truncated.stream), { code: "ERR_DECOMPRESS" });
  const corrupt = Buffer.from(gz);
  corrupt[gz.length - 6]! ^= 0xff; // inside the CRC32 trailer
  const bad = await decompress(feed(corrupt));
  await t.throwsAsync(collect(bad.stream), { code: "ERR_DECOMPRESS" });
});

test("decompress() inflates zstd output of the zstd tool, including a leading skippable frame", async (t) => {
  const zst = execFileSync("zstd", ["-3", "-c", "-q"], { input: data, maxBuffer: 64 << 20 });
  const skippable = Buffer.alloc(8 + 5);
  skippable.writeUInt32LE(0x184d2a53, 0);
  skippable.writeUInt32LE(5, 4);
  for (const input of [zst, Buffer.concat([skippable, zst])]) {
    const { stream, compression } = await decompress(feed(input, 10_000));
    t.is(compression, "zstd");
    t.true((await collect(stream)).equals(data));
  }
});

test("compressStream('zstd', level) output is read back by `zstd -d`; higher levels are smaller", async (t) => {
  const sizes: number[] = [];
  for (const level of [1, 19]) {
    const zst = await collect(feed(data).pipe(compressStream("zstd", level)));
    sizes.push(zst.length);
    t.true(execFileSync("zstd", ["-d", "-c", "-q"], { input: zst, maxBuffer: 64 << 20 }).equals(data));
  }
  t.true(sizes[1]! < sizes[0]!);
});

test("compressStream('gzip', level) output is read back by `gzip -d`", async (t) => {
  const gz = await collect(feed(data).pipe(compressStream("gzip", 1)));
  t.true(execFileSync("gzip", ["-d", "-c"], { input: gz, maxBuffer: 64 << 20 }).equals(data));
});

test("compressStream() refuses unknown kinds and levels out of range", (t) => {
  t.throws(() => compressStream("zstd", 0), { code: "ERR_INVALID_ARGUMENT" });
  t.throws(() => compressStream("gzip", 10), { code: "ERR_INVALID_ARGUMENT" });
  t.throws(() => compressStream("xz" as "gzip"), { code: "ERR_INVALID_ARGUMENT" });
});

test("with { nativeCodecs: false } gzip falls back to zlib and zstd to the tool", async (t) => {
  const off = { nativeCodecs: false };
  const gz = execFileSync("gzip", ["-c"], { input: data, maxBuffer: 64 << 20 });
  const zlibStream = (await decompress(feed(gz), off)).stream;
  t.true(zlibStream instanceof Gunzip, "Node's zlib inflates");
  t.true((await collect(zlibStream)).equals(data));
  t.false((await decompress(feed(gz))).stream instanceof Gunzip, "by default, ISA-L does");
  const zst = await collect(feed(data).pipe(compressStream("zstd", 3, off)));
  t.true((await collect((await decompress(feed(zst), off)).stream)).equals(data));
});

for (const kind of ["gzip", "zstd"] as const) {
  test(`decompress() gives a ${kind} bomb out in bounded steps, as fast as it is read`, async (t) => {
    const zeros = 256 << 20;
    const packed =
      kind === "gzip"
        ? execFileSync("sh", ["-c", `head -c ${zeros} /dev/zero | gzip -9`], { maxBuffer: 64 << 20 })
        : await collect(feed(Buffer.alloc(zeros), 1 << 20).pipe(compressStream("zstd", 3)));
    t.true(packed.length < 1 << 20, `${packed.length} bytes packed`);
    const { stream } = await decompress(feed(packed));
    let total = 0;
    let waiting = 0;
    for await (const c of stream) {
      total += (c as Buffer).length;
      // A read takes all that is buffered at once: what it got was waiting, and what is left.
      waiting = Math.max(waiting, (c as Buffer).length + stream.readableLength);
      await new Promise((r) => setImmediate(r)); // a slow reader
    }
    t.is(total, zeros);
    t.true(waiting <= 12 << 20, `at most ${waiting} bytes waited to be read`);
  });
}

test("decompress() reads zstd whose output ends exactly on a 1 MiB step", async (t) => {
  for (const size of [1 << 20, 3 << 20, 4 << 20, 8 << 20]) {
    const zst = execFileSync("zstd", ["-q", "-c"], { input: Buffer.alloc(size), maxBuffer: 64 << 20 });
    const out = await collect((await decompress(feed(zst))).stream);
    t.is(out.length, size);
  }
});
