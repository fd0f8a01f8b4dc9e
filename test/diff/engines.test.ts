/**
 * The product's apply engine (`applyLayer`: native/apply/tar_apply.h)
 * against the oracle (`applyLayerOracle`: the JavaScript engine in
 * test/oracle/), which follows the same rules: on the same tars both give
 * the same tree, the same size and digest, the same tar-split index, and
 * refuse the same archives with the same error. The engine is passed in.
 * The tars are fed in odd-sized chunks so that headers, PAX records and
 * bodies straddle chunk boundaries. The last test mutates a layer at
 * random (STRATA_ENGINE_FUZZ_CASES, default 200; STRATA_ENGINE_FUZZ_SEED to
 * replay): the native parser must refuse what the JavaScript one refuses,
 * with the same error, and never crash.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { type IndexRecord, indexRecords } from "../../src/archive/tar-split.js";
import { type ApplyOptions, applyLayer } from "../../src/diff/apply.js";
import { applyLayerOracle } from "../oracle/apply.js";
import { generateTree, prng } from "../helpers/gen-tree.js";
import { memoryRecorder } from "../helpers/memory-sink.js";
import { gnuTar } from "../helpers/peer.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";

const ENGINES = { native: applyLayer, oracle: applyLayerOracle };
type Engine = keyof typeof ENGINES;

interface Outcome {
  tree?: string[];
  size?: number;
  digest?: string;
  index?: IndexRecord[];
  error?: string;
}

/** The index's records, consecutive raw records merged: how raw runs are cut into records may differ. */
async function indexOf(index: Buffer): Promise<IndexRecord[]> {
  const out: IndexRecord[] = [];
  for await (const r of indexRecords(index)) {
    const last = out[out.length - 1];
    if ("raw" in r && last && "raw" in last) out[out.length - 1] = { raw: Buffer.concat([last.raw, r.raw]) };
    else out.push("raw" in r ? { raw: Buffer.from(r.raw) } : r);
  }
  return out;
}

async function run(t: ExecutionContext, engine: Engine, tar: Buffer, chunk: number, opts: ApplyOptions) {
  const dir = join(await tempDir(t), engine);
  await mkdir(dir);
  const out: Outcome = {};
  try {
    const { recorder, index } = memoryRecorder();
    const r = await ENGINES[engine](dir, chunks(tar, chunk), { ...opts, recorder, digest: true });
    Object.assign(out, { size: r.size, digest: r.digest, index: await indexOf(await index()) });
  } catch (err) {
    out.error = `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
  // Entries without a header of their own (whiteout devices, implied dirs) get the time of the apply.
  out.tree = await manifest(dir, { mtime: false });
  return out;
}

async function same(
  t: ExecutionContext,
  tar: Buffer,
  opts: ApplyOptions = {},
  chunk = 7_777,
  what = "",
): Promise<Outcome> {
  const native = await run(t, "native", tar, chunk, opts);
  const oracle = await run(t, "oracle", tar, chunk, opts);
  // After a failure the layer is thrown away; how much of the failing entry was written differs.
  if (native.error === undefined || oracle.error === undefined) t.deepEqual(native.tree, oracle.tree, `trees ${what}`);
  t.is(native.error, oracle.error, `errors ${what}`);
  t.is(native.size, oracle.size, "sizes");
  t.is(native.digest, oracle.digest, "digests");
  t.deepEqual(native.index, oracle.index, "tar-split indexes");
  return native;
}

test("a generated tree with every entry kind (GNU tar posix, xattrs) gives the same tree and index", async (t) => {
  const base = await tempDir(t);
  const src = join(base, "src");
  await mkdir(src);
  await generateTree(src, { seed: 7, dirs: 40, entries: 400 });
  const tarFile = join(base, "layer.tar");
  await gnuTar(["--format=posix", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", src, "-cf", tarFile, "."]);
  const tar = await readFile(tarFile);
  for (const chunk of [511, 65_536, 1 << 20]) {
    const out = await same(t, tar, {}, chunk);
    t.is(out.error, undefined);
    t.true(out.tree!.length > 400);
  }
});

test("GNU long names, files around the 1 MiB inline limit and replacements agree", async (t) => {
  const long = `${"deep/".repeat(40)}name-${"x".repeat(120)}`;
  const first: Spec[] = [
    { name: "a/", mode: 0o700, uid: 7, gid: 8, mtime: 1_500_000_000 },
    { name: `a/${long}`, content: "long" },
    { name: "a/small", content: randomBytes((1 << 20) - 3) },
    { name: "a/large", content: randomBytes((1 << 20) + 3), mode: 0o4755 },
    { name: "a/link-to-large", type: "link", linkname: "a/large" },
    { name: "a/sym", type: "symlink", linkname: "../a/small" },
    { name: "a/fifo", type: "fifo" },
  ];
  const replacements: Spec[] = [
    { name: "a/small", type: "dir" }, // a dir replaces the file
    { name: "a/small/inner", content: "in" },
    { name: "a/fifo", content: "a file now" },
  ];
  const tar = await gnuTarOf(t, first, replacements);
  for (const chunk of [1000, 300_001]) t.is((await same(t, tar, {}, chunk)).error, undefined);
});

test("AUFS and overlay whiteouts, opaque dirs and the plnk hardlink store agree", async (t) => {
  const specs: Spec[] = [
    { name: "d/", mode: 0o755 },
    { name: "d/kept", content: "kept" },
    { name: "d/.wh..wh..opq" },
    { name: "d/new", content: "new" },
    { name: ".wh.gone" },
    { name: "e/.wh.x" },
    { name: ".wh..wh.plnk/", type: "dir" },
    { name: ".wh..wh.plnk/1.2", content: "shared body", mode: 0o640, uid: 3 },
    { name: "p/one", type: "link", linkname: ".wh..wh.plnk/1.2" },
    { name: "p/two", type: "link", linkname: ".wh..wh.plnk/1.2" },
    { name: "e/.wh..wh.aufs-meta" },
  ];
  const tar = await makeTar(specs);
  for (const whiteouts of ["aufs", "overlay"] as const) t.is((await same(t, tar, { whiteouts })).error, undefined);
});

test("id maps agree, and an id outside the map is refused alike", async (t) => {
  const tar = await makeTar([
    { name: "f", content: "x", uid: 5, gid: 6 },
    { name: "g", content: "y", uid: 70_000 },
  ]);
  const map = [{ containerId: 0, hostId: 100_000, size: 65_536 }];
  const out = await same(t, tar, { uidMap: map, gidMap: map });
  t.regex(out.error ?? "", /^ERR_ID_MAP: .*uid 70000/);
});

test("malformed and malicious archives are refused alike, after the same entries", async (t) => {
  const good = await makeTar([{ name: "ok", content: "fine" }]);
  const cases: Array<[string, Buffer, RegExp]> = [
    ["truncated body", good.subarray(0, 512 + 2), /^ERR_TAR_FORMAT: .*body of "ok"/],
    ["truncated header", good.subarray(0, 300), /^ERR_TAR_FORMAT: .*in header/],
    ["bad checksum", corrupt(good, 148), /^ERR_TAR_FORMAT: .*checksum/],
    [
      "escape",
      await makeTar([
        { name: "a", content: "1" },
        { name: "../x", content: "2" },
      ]),
      /^ERR_BREAKOUT: /,
    ],
    ["symlink escape", await makeTar([{ name: "s", type: "symlink", linkname: "../../x" }]), /^ERR_BREAKOUT: /],
    ["hardlink to root", await makeTar([{ name: "h", type: "link", linkname: "./" }]), /^ERR_BREAKOUT: /],
    ["invalid whiteout", await makeTar([{ name: "a/.wh.." }]), /^ERR_BREAKOUT: /],
    ["root not a dir", await makeTar([{ name: ".", content: "x" }]), /^ERR_BREAKOUT: /],
    ["unknown type", withFlag(good, "S"), /^ERR_TAR_UNSUPPORTED: /],
  ];
  for (const [what, tar, want] of cases) {
    const out = await same(t, tar);
    t.regex(out.error ?? "(none)", want, what);
  }
});

test("names that are not UTF-8 become the same U+FFFD names in both", async (t) => {
  const raw = await makeTar([{ name: "latin1-X", content: "e" }]);
  raw[raw.indexOf(Buffer.from("latin1-X")) + 7] = 0xe9; // "latin1-\xe9": a lone Latin-1 byte
  fixChecksum(raw, 0);
  const out = await same(t, raw);
  t.is(out.error, undefined);
  t.true(out.tree!.some((l) => l.includes("latin1-\ufffd")));
});

for (const engine of Object.keys(ENGINES) as Engine[]) {
  test(`${engine} engine: a directory implied below a setgid one inherits its group and bit, in parallel too`, async (t) => {
    // The implied dir (no entry of its own) is made by its child's op. In parallel mode that op
    // must wait for the parent's entry, or the dir is made before the parent is setgid.
    const specs: Spec[] = [];
    for (let i = 0; i < 200; i++) {
      specs.push({ name: `s${i}/`, mode: 0o2775, gid: 1234 });
      specs.push({ name: `s${i}/implied/f`, content: String(i) });
    }
    const tar = await makeTar(specs);
    for (const threads of [1, 4]) {
      const dir = await tempDir(t);
      await ENGINES[engine](dir, chunks(tar, 65_536), { threads });
      for (let i = 0; i < 200; i++) {
        const st = await stat(join(dir, `s${i}/implied`));
        t.is(st.gid, 1234, `s${i}/implied gid, threads=${threads}`);
        t.is(st.mode & 0o2000, 0o2000, `s${i}/implied setgid, threads=${threads}`);
      }
    }
  });
}

test("randomly damaged layers get the same outcome from both engines", async (t) => {
  const cases = Number(process.env.STRATA_ENGINE_FUZZ_CASES ?? 200);
  const seed = Number(process.env.STRATA_ENGINE_FUZZ_SEED ?? Date.now() % 1_000_000);
  t.log(`seed ${seed} (STRATA_ENGINE_FUZZ_SEED to replay), ${cases} cases`);
  const base = await tempDir(t);
  const src = join(base, "src");
  await mkdir(src);
  await generateTree(src, { seed: 11, dirs: 12, entries: 80 });
  const tarFile = join(base, "layer.tar");
  await gnuTar(["--format=posix", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", src, "-cf", tarFile, "."]);
  const layer = await readFile(tarFile);
  const rand = prng(seed);
  let refused = 0;
  for (let i = 0; i < cases; i++) {
    const tar = damage(layer, rand);
    const opts: ApplyOptions = { whiteouts: i % 2 ? "overlay" : "aufs" };
    const out = await same(t, tar, opts, [512, 1000, 7_777, 65_536][i % 4], `#${i} (${opts.whiteouts})`);
    if (out.error !== undefined) refused++;
  }
  t.log(`${refused} of ${cases} refused`);
  t.true(refused > 0 && refused < cases, "the damage both breaks and spares archives");
});

/**
 * One to four random changes: a byte anywhere, or in a header block an
 * entry type or a number field (checksum fixed), or a cut.
 */
function damage(layer: Buffer, rand: () => number): Buffer {
  const b = Buffer.from(layer);
  const headers = headerBlocks(layer);
  for (let k = 1 + Math.floor(rand() * 4); k > 0; k--) {
    const r = rand();
    const at = headers[Math.floor(rand() * headers.length)]!;
    if (r < 0.5) {
      b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    } else if (r < 0.7) {
      b.write("0123456789xgLKSA"[Math.floor(rand() * 16)]!, at + 156, 1, "latin1");
      fixChecksum(b, at);
    } else if (r < 0.85) {
      const field = [100, 108, 116, 124, 136][Math.floor(rand() * 5)]!;
      b.write(
        Math.floor(rand() * 1e9)
          .toString(8)
          .padStart(7, "0")
          .slice(-7),
        at + field,
        "latin1",
      );
      fixChecksum(b, at);
    } else {
      return b.subarray(0, Math.floor(rand() * b.length));
    }
  }
  return b;
}

/**
 * GNU tar's archive (--format=gnu: long names become 'L' records) of the
 * tree `first` makes, followed by `later`'s entries as a later part of
 * the same layer.
 */
async function gnuTarOf(t: ExecutionContext, first: Spec[], later: Spec[]): Promise<Buffer> {
  const base = await tempDir(t);
  const src = join(base, "src");
  await mkdir(src);
  await applyLayer(src, chunks(await makeTar(first)));
  const tarFile = join(base, "gnu.tar");
  await gnuTar(["--format=gnu", "--numeric-owner", "-C", src, "-cf", tarFile, "."]);
  return Buffer.concat([stripEnd(await readFile(tarFile)), await makeTar(later)]);
}

/** The archive without its end-of-archive zero blocks. */
function stripEnd(tar: Buffer): Buffer {
  let end = tar.length;
  while (end >= 512 && tar.subarray(end - 512, end).every((b) => b === 0)) end -= 512;
  return tar.subarray(0, end);
}

function corrupt(tar: Buffer, at: number): Buffer {
  const b = Buffer.from(tar);
  b[at] = 0x37 - (b[at]! === 0x37 ? 1 : 0);
  return b;
}

function withFlag(tar: Buffer, flag: string): Buffer {
  const b = Buffer.from(tar);
  b.write(flag, 156, 1, "latin1");
  fixChecksum(b, 0);
  return b;
}

/** Offsets of the blocks whose checksum is right: the headers (PAX and GNU records included). */
function headerBlocks(tar: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 512 <= tar.length; at += 512) {
    let sum = 8 * 32;
    for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += tar[at + i]!;
    if (sum !== 8 * 32 && Number.parseInt(tar.toString("latin1", at + 148, at + 155), 8) === sum) out.push(at);
  }
  return out;
}

function fixChecksum(b: Buffer, off: number): void {
  b.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[off + i]!;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, off + 148, 8, "latin1");
}
