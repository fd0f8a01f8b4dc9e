/**
 * Whiteout vectors from Docker's behaviour (reference §2.5–2.6), in both
 * forms: AUFS (applyLayer deletes) and overlay (applyLayer writes char 0/0
 * and trusted.overlay.opaque=y into a fresh upper dir, checked through a
 * real overlayfs mount), and the export side turning the overlay form back
 * into AUFS entries.
 */
import { lstat, mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { readTar } from "../helpers/tar-reader.js";
import { applyLayer, exportTree } from "../../src/diff/index.js";
import { C, lgetxattr, mount, umount2 } from "../../src/native.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";

/** Every path below root, dirs with a trailing "/", sorted (Docker's readDirContents). */
async function contents(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for (const d of await readdir(rel ? join(root, rel) : root, { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      out.push(d.isDirectory() ? `${r}/` : r);
      if (d.isDirectory()) await walk(r);
    }
  }
  await walk("");
  return out.sort();
}

/** A layer of the named entries ("x/" is a dir, anything else a file whose content is its name). */
function layer(names: string[]): Promise<Buffer> {
  return makeTar(names.map((name): Spec => (name.endsWith("/") ? { name } : { name, content: name })));
}

// Docker's TestApplyLayerWhiteouts, layer by layer onto the same tree.
const BASE = [
  ".baz",
  "bar/",
  "bar/bax",
  "bar/bay/",
  "baz",
  "foo/",
  "foo/.abc",
  "foo/.bcd/",
  "foo/.bcd/a",
  "foo/cde/",
  "foo/cde/def",
  "foo/cde/efg",
  "foo/fgh",
  "foobar",
];
const STEPS: Array<{ change: string[]; expected: string[] }> = [
  { change: BASE, expected: BASE },
  {
    // the opaque dir keeps foo/.bce (earlier in this layer) and what comes after it
    change: [".bay", ".wh.baz", "foo/", "foo/.bce", "foo/.wh..wh..opq", "foo/cde/", "foo/cde/efg"],
    expected: [".bay", ".baz", "bar/", "bar/bax", "bar/bay/", "foo/", "foo/.bce", "foo/cde/", "foo/cde/efg", "foobar"],
  },
  {
    change: [".bay", ".wh..baz", ".wh.foobar", "foo/", "foo/.abc", "foo/.wh.cde", "bar/"],
    expected: [".bay", "bar/", "bar/bax", "bar/bay/", "foo/", "foo/.abc", "foo/.bce"],
  },
  { change: [".abc", ".wh..wh..opq", "foobar"], expected: [".abc", "foobar"] },
];

test("AUFS form: Docker's TestApplyLayerWhiteouts vectors, layer after layer", async (t) => {
  const root = await tempDir(t);
  for (const [i, step] of STEPS.entries()) {
    await applyLayer(root, chunks(await layer(step.change)));
    t.deepEqual(await contents(root), [...step.expected].sort(), `layer ${i}`);
  }
});

/** Mounts overlayfs with `lowers` (top first) read-only at a fresh dir; unmounted at teardown. */
async function mountLowers(t: Parameters<typeof tempDir>[0], base: string, lowers: string[]): Promise<string> {
  const merged = await mkdirUnique(base, "merged");
  await mount("overlay", merged, "overlay", 0, `lowerdir=${lowers.join(":")}`);
  t.teardown(() => umount2(merged, C.MNT_DETACH).catch(() => {}));
  return merged;
}

let unique = 0;
async function mkdirUnique(base: string, prefix: string): Promise<string> {
  const p = join(base, `${prefix}-${unique++}`);
  await mkdir(p);
  return p;
}

test("overlay form: the same vectors, each layer its own dir, seen through a real overlayfs mount", async (t) => {
  const base = await tempDir(t);
  const layers: string[] = [];
  for (const [i, step] of STEPS.entries()) {
    const dir = await mkdirUnique(base, `layer${i}`);
    await applyLayer(dir, chunks(await layer(step.change)), { whiteouts: "overlay" });
    layers.unshift(dir);
    const merged = layers.length === 1 ? layers[0]! : await mountLowers(t, base, layers);
    // overlayfs (checked on 6.18) ignores an opaque mark on a lower layer's root directory, so the last step cannot hide
    // the lowers' top level through the kernel; its own dir still carries the mark (checked below)
    if (i === 3) continue;
    t.deepEqual(await contents(merged), [...step.expected].sort(), `layer ${i}`);
  }
  const l1 = layers[2]!;
  const wh = await lstat(join(l1, "baz"));
  t.true(wh.isCharacterDevice());
  t.is(wh.rdev, 0, "whiteout is char 0/0");
  t.is((await lgetxattr(join(l1, "foo"), "trusted.overlay.opaque"))?.toString(), "y");
  t.is(await lgetxattr(join(l1, "foo/cde"), "trusted.overlay.opaque"), null);
  t.is((await lgetxattr(layers[0]!, "trusted.overlay.opaque"))?.toString(), "y", "root marked opaque");
  t.false(
    (await readdir(l1)).some((n) => n.startsWith(".wh.")),
    "no AUFS names on disk in the overlay form",
  );
});

test("exportTree({whiteouts: overlay}) turns char 0/0 and opaque dirs back into AUFS entries", async (t) => {
  const base = await tempDir(t);
  const upper = await mkdirUnique(base, "upper");
  const change = STEPS[1]!.change;
  await applyLayer(upper, chunks(await layer(change)), { whiteouts: "overlay" });
  const names: Array<[string, string, number, number]> = [];
  for await (const e of readTar(exportTree(upper, { whiteouts: "overlay" }))) {
    names.push([e.header.name, e.header.type, e.header.mode, e.header.xattrs.size]);
  }
  t.deepEqual(
    names.map((n) => n[0]),
    // as Docker's converter: the opaque marker right after its directory's header
    [".bay", ".wh.baz", "foo/", "foo/.wh..wh..opq", "foo/.bce", "foo/cde/", "foo/cde/efg"],
  );
  const whiteout = names.find((n) => n[0] === ".wh.baz")!;
  t.deepEqual(whiteout.slice(1), ["file", 0o600, 0]);
  t.is(names.find((n) => n[0] === "foo/")![3], 0, "the opaque xattr is not exported");

  // Applying the exported tar in AUFS form does what the original layer did.
  const viaExport = await mkdirUnique(base, "via-export");
  const direct = await mkdirUnique(base, "direct");
  for (const dir of [viaExport, direct]) await applyLayer(dir, chunks(await layer(BASE)));
  await applyLayer(direct, chunks(await layer(change)));
  const { pipeline } = await import("node:stream/promises");
  const { PassThrough } = await import("node:stream");
  const pass = new PassThrough();
  await Promise.all([pipeline(exportTree(upper, { whiteouts: "overlay" }), pass), applyLayer(viaExport, pass)]);
  t.deepEqual(await contents(viaExport), await contents(direct));
});

test("AUFS metadata (.wh..wh.* other than .opq) is skipped, at the top and below", async (t) => {
  const root = await tempDir(t);
  const tar = await makeTar([
    { name: ".wh..wh.aufs", content: "" },
    { name: ".wh..wh.orph/" },
    { name: ".wh..wh.orph/x", content: "orphan" },
    { name: "d/" },
    { name: "d/.wh..wh.meta", content: "" },
    { name: "keep", content: "k" },
  ]);
  for (const whiteouts of ["aufs", "overlay"] as const) {
    const dir = await mkdirUnique(root, whiteouts);
    await applyLayer(dir, chunks(tar), { whiteouts });
    t.deepEqual(await contents(dir), ["d/", "keep"], whiteouts);
  }
});

test(".wh..wh.plnk bodies retarget hardlinks: the names share one inode and the store is not left behind", async (t) => {
  const root = await tempDir(t);
  const tar = await makeTar([
    { name: ".wh..wh.plnk/", mode: 0o700 },
    { name: ".wh..wh.plnk/1234.5678", content: "shared body", mode: 0o640, uid: 7 },
    { name: "a/" },
    { name: "a/one", type: "link", linkname: ".wh..wh.plnk/1234.5678" },
    { name: "two", type: "link", linkname: ".wh..wh.plnk/1234.5678" },
  ]);
  await applyLayer(root, chunks(tar));
  t.deepEqual(await contents(root), ["a/", "a/one", "two"]);
  t.is(await readFile(join(root, "a/one"), "utf8"), "shared body");
  const one = await lstat(join(root, "a/one"));
  const two = await lstat(join(root, "two"));
  t.is(one.ino, two.ino, "both names are links to one inode, as in Docker");
  t.is(one.mode & 0o7777, 0o640);
  t.is(one.uid, 7);
});

test("dir replaced by a file and a file by a dir across layers, in both forms", async (t) => {
  const base = await tempDir(t);
  const lower = [{ name: "x/" }, { name: "x/child", content: "c" }, { name: "y", content: "file y" }] as Spec[];
  const upper = [{ name: "x", content: "now a file" }, { name: "y/" }, { name: "y/inside", content: "i" }] as Spec[];
  const aufs = await mkdirUnique(base, "aufs");
  await applyLayer(aufs, chunks(await makeTar(lower)));
  await applyLayer(aufs, chunks(await makeTar(upper)));
  t.deepEqual(await contents(aufs), ["x", "y/", "y/inside"]);

  const l0 = await mkdirUnique(base, "l0");
  const l1 = await mkdirUnique(base, "l1");
  await applyLayer(l0, chunks(await makeTar(lower)), { whiteouts: "overlay" });
  await applyLayer(l1, chunks(await makeTar(upper)), { whiteouts: "overlay" });
  const merged = await mountLowers(t, base, [l1, l0]);
  t.deepEqual(await contents(merged), ["x", "y/", "y/inside"]);
  const opts = { exclude: () => false };
  t.deepEqual(await manifest(merged, opts), await manifest(aufs, opts));
});
