/**
 * The Bar's round trip, on realistic layers: apply (recording a tar-split
 * index) → changes against empty → exportChanges → apply again gives an
 * identical tree (path, type, mode, uid, gid, size, mtime, rdev, xattrs,
 * link target, content hash, hardlink groups), and the pristine tar
 * re-assembled from the index and the applied tree has the input's sha256.
 *
 * Layers: a seeded tree with every entry kind, archived by GNU tar
 * (posix + xattrs), and GNU tar's archive of /usr/share/doc when present.
 */
import { createHash } from "node:crypto";
import { access, mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import test, { type ExecutionContext } from "ava";
import { assembleTar, openInLayer } from "../../src/archive/tar-split.js";
import { memoryRecorder } from "../helpers/memory-sink.js";
import { applyLayer, changes, exportChanges, exportTree } from "../../src/diff/index.js";
import { generateTree } from "../helpers/gen-tree.js";
import { gnuTar, linkGroups } from "../helpers/peer.js";
import { chunks } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { type ManifestOptions, manifest } from "../helpers/tree.js";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Pipes a tar stream straight into applyLayer on a fresh dir. */
async function applyStream(dir: string, tar: NodeJS.ReadableStream): Promise<void> {
  await mkdir(dir);
  const pass = new PassThrough({ highWaterMark: 1 << 20 });
  await Promise.all([pipeline(tar, pass), applyLayer(dir, pass)]);
}

async function roundTrip(t: ExecutionContext, tar: Buffer, base: string, opts: ManifestOptions): Promise<void> {
  // 1. apply, recording the pristine index
  const first = join(base, "first");
  await mkdir(first);
  const rec = memoryRecorder();
  const { warnings } = await applyLayer(first, chunks(tar, 1 << 16), { recorder: rec.recorder });
  t.deepEqual(warnings, []);
  const index = await rec.index();

  // 2. changes against empty → export → apply again
  const all = await changes(first, null);
  t.true(all.every((c) => c.kind === "A"));
  const second = join(base, "second");
  await applyStream(second, exportChanges(first, all));
  const want = await manifest(first, opts);
  t.true(want.length > 0);
  t.deepEqual(await manifest(second, opts), want, "apply → changes → export → apply");
  t.deepEqual(await linkGroups(second), await linkGroups(first), "hardlinks kept");

  // the same through exportTree
  const third = join(base, "third");
  await applyStream(third, exportTree(first));
  t.deepEqual(await manifest(third, opts), want, "apply → exportTree → apply");

  // 3. pristine: the exact input back from the index and the tree
  const files = await openInLayer(first);
  try {
    const parts: Buffer[] = [];
    for await (const c of assembleTar(index, files.open, { digest: `sha256:${sha256(tar)}` })) parts.push(c as Buffer);
    t.is(sha256(Buffer.concat(parts)), sha256(tar));
  } finally {
    await files.close();
  }
  t.log(`${want.length} entries, tar ${tar.length} bytes, index ${index.length} bytes`);
}

test("round trip of a generated tree with every entry kind (GNU tar posix, xattrs)", async (t) => {
  const base = await tempDir(t);
  const src = join(base, "src");
  await mkdir(src);
  const entries = Number(process.env.STRATA_ROUNDTRIP_ENTRIES ?? 400);
  await generateTree(src, { seed: 42, dirs: Math.max(12, entries / 10), entries });
  const tarFile = join(base, "layer.tar");
  await gnuTar(["--format=posix", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", src, "-cf", tarFile, "."]);
  // exported tars carry security.capability only (Docker's rule), so compare that xattr
  await roundTrip(t, await readFile(tarFile), base, { xattrs: "capability" });
});

test("round trip of GNU tar's archive of /usr/share/doc (implied parent dir included)", async (t) => {
  try {
    await access("/usr/share/doc");
  } catch {
    t.pass("no /usr/share/doc on this machine");
    return;
  }
  const base = await tempDir(t);
  const tarFile = join(base, "doc.tar");
  // the first STRATA_ROUNDTRIP_DOC package dirs (default 200; "all" for the whole tree)
  const limit = process.env.STRATA_ROUNDTRIP_DOC ?? "200";
  const pkgs = (await readdir("/usr/share/doc")).sort();
  const pick = limit === "all" ? ["doc"] : pkgs.slice(0, Number(limit)).map((p) => `doc/${p}`);
  await gnuTar(["--format=posix", "--numeric-owner", "-C", "/usr/share", "-cf", tarFile, ...pick]);
  // GNU tar posix keeps nanosecond mtimes; exported tars keep whole seconds, as Docker's do
  await roundTrip(t, await readFile(tarFile), base, { xattrs: "capability", mtime: "seconds" });
});

// Extra layers, e.g. the benchmark corpus: STRATA_ROUNDTRIP_TARS=/var/tmp/strata-corpus/debian.tar:...
for (const file of (process.env.STRATA_ROUNDTRIP_TARS ?? "").split(":").filter(Boolean)) {
  test(`round trip of ${file}`, async (t) => {
    const base = await tempDir(t);
    await roundTrip(t, await readFile(file), base, { xattrs: "capability", mtime: "seconds" });
  });
}
