/**
 * The export side: headers as Docker's tarAppender writes them
 * (exportTree/exportChanges), changesSize, and the root entry on apply.
 */
import { execFileSync } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { link, lstat, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import test from "ava";
import type { TarHeader } from "../../src/archive/tar-header.js";
import { readTar } from "../helpers/tar-reader.js";
import { applyLayer, changes, changesSize, exportChanges, exportTree } from "../../src/diff/index.js";
import { capabilityForExport } from "../../src/diff/export.js";
import { C, lgetxattr, lsetxattr, mknod, utimensat } from "../../src/native.js";
import { capV2, capV3 } from "../helpers/gen-tree.js";
import { chunks, makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

async function headers(stream: AsyncIterable<Buffer>): Promise<Array<TarHeader & { body: string }>> {
  const out: Array<TarHeader & { body: string }> = [];
  for await (const e of readTar(stream)) out.push({ ...e.header, body: (await e.readAll()).toString() });
  return out;
}

test("capabilityForExport() rewrites v3 as v2 (20 bytes, same sets) and leaves v2 alone", (t) => {
  const v2 = capabilityForExport(capV3(100_000));
  t.deepEqual(v2, capV2());
  t.deepEqual(capabilityForExport(capV2()), capV2());
});

test("exportTree() writes Docker's headers: dir '/', whole seconds, devices, hardlinks, capability as the only xattr", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "d"));
  await writeFile(join(dir, "d/f"), "body");
  await lsetxattr(join(dir, "d/f"), "security.capability", capV2());
  await lsetxattr(join(dir, "d/f"), "user.dropped", Buffer.from("x"));
  await link(join(dir, "d/f"), join(dir, "z-link"));
  await mknod(join(dir, "blk"), C.S_IFBLK | 0o600, 259, 70_000);
  await utimensat(C.AT_FDCWD, join(dir, "d/f"), { sec: 1, nsec: 0 }, { sec: 1_600_000_000, nsec: 987_654_321 });
  const hs = await headers(exportTree(dir));
  t.deepEqual(
    hs.map((h) => [h.name, h.type]),
    [
      ["blk", "block"],
      ["d/", "dir"],
      ["d/f", "file"],
      ["z-link", "link"],
    ],
  );
  const [blk, , f, l] = hs;
  t.deepEqual([blk!.devmajor, blk!.devminor], [259, 70_000]);
  t.deepEqual(f!.mtime, { sec: 1_600_000_000, nsec: 0 });
  t.deepEqual([...f!.xattrs.keys()], ["security.capability"]);
  t.deepEqual(f!.xattrs.get("security.capability"), capV2());
  t.is(f!.body, "body");
  t.is(l!.linkname, "d/f");
  t.is(l!.size, 0);
});

test("exportChanges() writes deletions as empty .wh. files (mode 0, root) and the rest from disk, sorted by path", async (t) => {
  const base = await tempDir(t);
  const lower = join(base, "lower");
  const upper = join(base, "upper");
  await mkdir(lower);
  const tar = await makeTar([
    { name: "a/" },
    { name: "a/gone", content: "g" },
    { name: "a/keep", content: "k" },
    { name: "b/" },
  ]);
  await applyLayer(lower, chunks(tar));
  await mkdir(upper);
  execFileSync("cp", ["-a", `${lower}/.`, upper]);
  await rm(join(upper, "a/gone"));
  await rm(join(upper, "b"), { recursive: true });
  await writeFile(join(upper, "a/new"), "new!");
  const cs = await changes(upper, lower);
  t.deepEqual(
    cs.map((c) => `${c.kind} ${c.path}`),
    ["C /a", "A /a/new", "D /a/gone", "D /b"],
  );
  const hs = await headers(exportChanges(upper, cs));
  // sorted by change path ("/a", "/a/gone", "/a/new", "/b"), as Docker's ExportChanges
  t.deepEqual(
    hs.map((h) => h.name),
    ["a/", "a/.wh.gone", "a/new", ".wh.b"],
  );
  const wh = hs.find((h) => h.name === "a/.wh.gone")!;
  t.deepEqual([wh.type, wh.mode, wh.uid, wh.gid, wh.size], ["file", 0, 0, 0, 0]);
  t.is(hs.find((h) => h.name === "a/new")!.body, "new!");
  t.is(await changesSize(upper, cs), 4);
});

test("changesSize() counts each inode once, and no directories or deletions", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "d"));
  await writeFile(join(dir, "d/f"), "12345");
  await link(join(dir, "d/f"), join(dir, "g"));
  await writeFile(join(dir, "h"), "123");
  const size = await changesSize(dir, [
    { path: "/d", kind: "A" },
    { path: "/d/f", kind: "A" },
    { path: "/g", kind: "A" },
    { path: "/h", kind: "C" },
    { path: "/gone", kind: "D" },
    { path: "/vanished", kind: "A" },
  ]);
  t.is(size, 8);
});

test("applyLayer() applies the root entry ./ to the root itself: mode, owner, xattrs, times", async (t) => {
  const dir = await tempDir(t);
  const tar = await makeTar([
    { name: "./", mode: 0o711, uid: 12, gid: 34, mtime: 1_500_000_000, xattrs: { "user.root": "yes" } },
    { name: "./f", content: "x" },
  ]);
  await applyLayer(dir, chunks(tar));
  const st = await lstat(dir);
  t.is(st.mode & 0o7777, 0o711);
  t.deepEqual([st.uid, st.gid], [12, 34]);
  t.is(st.mtimeMs, 1_500_000_000_000, "restored after the child was created");
  t.is((await lgetxattr(dir, "user.root"))?.toString(), "yes");
  t.is(await readFile(join(dir, "f"), "utf8"), "x");
});

test("exportTree() of a tree larger than one native batch: every entry once, in walk order, small and large bodies intact", async (t) => {
  const src = await tempDir(t);
  const back = await tempDir(t);
  // 3 x 40 x 30 files (more than a batch of entries and of inlined bytes), a file over
  // the inline limit, an empty file, hardlinks whose first name lands in an earlier batch.
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 40; b++) {
      const d = join(src, `a${a}`, `b${String(b).padStart(2, "0")}`);
      await mkdir(d, { recursive: true });
      for (let f = 0; f < 30; f++) await writeFile(join(d, `f${f}`), Buffer.alloc(4000 + f * 97, a * 40 + b));
    }
  }
  const big = Buffer.alloc(3 << 20);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
  await writeFile(join(src, "big"), big);
  await writeFile(join(src, "empty"), "");
  await link(join(src, "a0/b00/f0"), join(src, "z-late-link"));
  const tarFile = join(await tempDir(t), "tree.tar");
  const names: string[] = [];
  await pipeline(exportTree(src), createWriteStream(tarFile));
  for await (const e of readTar(createReadStream(tarFile))) {
    names.push(e.header.name);
    await e.readAll();
  }
  const expected = execFileSync("find", [".", "-mindepth", "1"], { cwd: src, encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map((p) => p.slice(2));
  t.is(names.length, expected.length);
  t.deepEqual(names.map((n) => n.replace(/\/$/, "")).sort(), expected.sort());
  t.true(names.indexOf("a0/b00/f0") < names.indexOf("z-late-link"));
  // Depth first in byte order: each directory right before its contents.
  t.deepEqual(names.slice(0, 3), ["a0/", "a0/b00/", "a0/b00/f0"]);
  execFileSync("tar", ["-xf", tarFile, "-C", back]);
  execFileSync("diff", ["-r", "--no-dereference", src, back]);
  t.deepEqual(await readFile(join(back, "big")), big);
  t.is((await lstat(join(back, "z-late-link"))).ino, (await lstat(join(back, "a0/b00/f0"))).ino);
});
