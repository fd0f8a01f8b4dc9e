/**
 * Compression bombs through `strata layer apply` (and `layer export`), run
 * as a child process: memory must stay bounded whatever the compression
 * ratio and however many bytes trail the tar's end marker. Each child's
 * peak RSS (VmHWM) must stay under 600 MiB (the ceiling in
 * src/archive/README.md). `bomb.test.ts` does the same for load and pull. The bombs are made here, small on disk: a 2 GiB
 * run of zeros is a zstd frame of a few KB.
 *
 * STRATA_BOMB_MIB sets the size of the zero runs (default 2048).
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import test, { type ExecutionContext } from "ava";
import { compressStream } from "../../src/archive/compression.js";
import { strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { strataMeasured } from "./bomb.js";

const MIB = 1 << 20;
const BOMB_MIB = Number(process.env.STRATA_BOMB_MIB ?? 2048);
const CEILING_MIB = 600;

/** `strata ARGS` as a child, with its peak RSS in MiB. */
async function strataPeak(t: ExecutionContext, args: string[]) {
  const r = await strataMeasured(args, join(await tempDir(t, "strata-peak-"), "peak"));
  return { ...r, peakMiB: r.peakRss / MIB };
}

/** `head` bytes, then `zeros` MiB of zeros, as a stream of 1 MiB chunks. */
function* zerosAfter(head: Buffer, zeros: number): Generator<Buffer> {
  if (head.length) yield head;
  const z = Buffer.alloc(MIB);
  for (let i = 0; i < zeros; i++) yield z;
}

function sha256Of(parts: Iterable<Buffer>): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return `sha256:${h.digest("hex")}`;
}

async function bomb(t: ExecutionContext, name: string, parts: () => Iterable<Buffer>, kind: "gzip" | "zstd") {
  const file = join(await tempDir(t, "strata-bomb-"), name);
  const codec = kind === "gzip" ? createGzip({ level: 1 }) : compressStream("zstd", 3);
  await pipeline(Readable.from(parts()), codec, createWriteStream(file));
  t.log(`${name}: ${(await stat(file)).size} bytes on disk`);
  return file;
}

async function apply(t: ExecutionContext, file: string): Promise<{ root: string; chainID: string }> {
  const root = await tempDir(t, "strata-bomb-root-");
  const r = await strataPeak(t, ["--root", root, "--driver", "vfs", "layer", "apply", file]);
  t.log(`layer apply: exit ${r.code}, peak RSS ${r.peakMiB.toFixed(0)} MiB ${r.stderr.trim()}`);
  t.is(r.code, 0, r.stderr);
  t.true(r.peakMiB < CEILING_MIB, `peak RSS ${r.peakMiB.toFixed(0)} MiB`);
  return { root, chainID: r.stdout.trim() };
}

test.serial(
  `a zstd frame of ${BOMB_MIB} MiB of zeros (an empty tar, then zeros) applies in bounded memory`,
  async (t) => {
    const parts = () => zerosAfter(Buffer.alloc(0), BOMB_MIB);
    const file = await bomb(t, "zeros.zst", parts, "zstd");
    const { chainID } = await apply(t, file);
    t.is(chainID, sha256Of(parts()), "the trailing zeros are part of the diffID, as in Docker");
  },
);

test.serial(
  `a tiny tar then ${BOMB_MIB} MiB of zeros, gzip'd, applies and exports byte for byte in bounded memory`,
  async (t) => {
    const tar = await makeTar([{ name: "a", content: "hi" }]);
    const parts = () => zerosAfter(tar, BOMB_MIB);
    const file = await bomb(t, "trailer.tar.gz", parts, "gzip");
    const { root, chainID } = await apply(t, file);
    t.is(chainID, sha256Of(parts()));
    // Export re-assembles the tar from the index and checks it against the diffID at the end.
    const out = join(root, "export.tar");
    const r = await strataPeak(t, ["--root", root, "--driver", "vfs", "layer", "export", chainID, "-o", out]);
    t.log(`layer export: exit ${r.code}, peak RSS ${r.peakMiB.toFixed(0)} MiB`);
    t.is(r.code, 0, r.stderr);
    t.true(r.peakMiB < CEILING_MIB, `export peak RSS ${r.peakMiB.toFixed(0)} MiB`);
    t.is((await stat(out)).size, tar.length + BOMB_MIB * MIB);
  },
);

test.serial(`a zstd layer holding one ${BOMB_MIB / 2} MiB file of zeros applies in bounded memory`, async (t) => {
  const size = (BOMB_MIB / 2) * MIB;
  const head = await makeTar([{ name: "big", content: Buffer.alloc(0) }]);
  // The header of a file of `size` bytes: the test's tar writer, with the size patched in.
  const header = Buffer.from(head.subarray(0, 512));
  header.write(size.toString(8).padStart(11, "0"), 124, 11, "latin1");
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  function* parts(): Generator<Buffer> {
    yield* zerosAfter(header, BOMB_MIB / 2);
    yield Buffer.alloc(1024); // the end marker
  }
  const file = await bomb(t, "big.tar.zst", parts, "zstd");
  const { root, chainID } = await apply(t, file);
  const ls = await strata(["--root", root, "--driver", "vfs", "--json", "layer", "ls"]);
  const layers = JSON.parse(ls.stdout) as Array<{ chainID: string; size: number }>;
  t.deepEqual(layers, [{ ...layers[0]!, chainID, size }]);
});

test.serial("a cut zstd bomb fails with one clear error, in bounded memory", async (t) => {
  const file = await bomb(t, "cut.zst", () => zerosAfter(Buffer.alloc(0), BOMB_MIB), "zstd");
  await truncate(file, (await stat(file)).size - 8);
  const root = await tempDir(t, "strata-bomb-root-");
  const r = await strataPeak(t, ["--root", root, "--driver", "vfs", "layer", "apply", file]);
  t.log(`exit ${r.code}, peak RSS ${r.peakMiB.toFixed(0)} MiB: ${r.stderr.trim()}`);
  t.not(r.code, 0);
  t.regex(r.stderr, /^strata: Cannot decompress the layer: unexpected end of zstd data \[ERR_DECOMPRESS\]\n$/);
  t.true(r.peakMiB < CEILING_MIB);
  const ls = await strata(["--root", root, "--driver", "vfs", "--json", "layer", "ls"]);
  t.deepEqual(JSON.parse(ls.stdout), [], "nothing half done is left");
});
