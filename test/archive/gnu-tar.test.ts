/**
 * GNU tar as a real peer, both ways: archives it writes in each format
 * (gnu, posix with xattrs, ustar, v7) apply to the same tree, and archives
 * strata writes list, compare (`tar -d`) and extract to the same tree with it.
 */
import { createReadStream } from "node:fs";
import { lstat, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { readTar } from "../helpers/tar-reader.js";
import { applyLayer, exportTree } from "../../src/diff/index.js";
import { C, utimensat } from "../../src/native.js";
import { type GenOptions, generateTree } from "../helpers/gen-tree.js";
import { gnuTar, linkGroups, saveStream } from "../helpers/peer.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";

type Format = "gnu" | "posix" | "ustar" | "v7";

/** What each format can carry, as generator options. */
const CAN: Record<Format, Omit<GenOptions, "seed">> = {
  gnu: { xattrs: false },
  posix: {},
  ustar: { xattrs: false, longNames: false, bigIds: false },
  v7: { xattrs: false, longNames: false, bigIds: false, devices: false },
};

async function sourceTree(t: Parameters<typeof tempDir>[0], format: Format, seed: number) {
  const base = await tempDir(t);
  const src = join(base, "src");
  await mkdir(src);
  const count = await generateTree(src, { seed, ...CAN[format] });
  return { base, src, count };
}

for (const format of ["gnu", "posix", "ustar", "v7"] as const) {
  test(`applyLayer() of a GNU tar --format=${format} archive gives the source tree`, async (t) => {
    const { base, src } = await sourceTree(t, format, 11);
    const tarFile = join(base, "gnu.tar");
    const xattrArgs = format === "posix" ? ["--xattrs", "--xattrs-include=*"] : [];
    await gnuTar([`--format=${format}`, ...xattrArgs, "--numeric-owner", "-C", src, "-cf", tarFile, "."]);
    const dst = join(base, "dst");
    await mkdir(dst);
    const { warnings } = await applyLayer(dst, createReadStream(tarFile));
    t.deepEqual(warnings, []);
    const xattrs = format === "posix" ? "all" : "capability";
    t.deepEqual(await manifest(dst, { mtime: "seconds", xattrs }), await manifest(src, { mtime: "seconds", xattrs }));
    t.deepEqual(await linkGroups(dst), await linkGroups(src));
  });

  test(`GNU tar reads strata's archive of a ${format}-sized tree: lists it, finds no differences, extracts the same tree`, async (t) => {
    const { base, src, count } = await sourceTree(t, format, 23);
    const tarFile = join(base, "strata.tar");
    await saveStream(exportTree(src), tarFile);
    const listed = (await gnuTar(["--numeric-owner", "-tf", tarFile])).split("\n").filter(Boolean);
    t.is(listed.length, count);
    // tar -d compares mode, uid, gid, mtime, size, content and link targets against the disk
    await t.notThrowsAsync(gnuTar(["--numeric-owner", "-d", "-f", tarFile, "-C", src]));
    const dst = join(base, "dst");
    await mkdir(dst);
    await gnuTar(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tarFile, "-C", dst]);
    const opts = { mtime: "seconds", xattrs: "capability" } as const;
    t.deepEqual(await manifest(dst, opts), await manifest(src, opts));
    t.deepEqual(await linkGroups(dst), await linkGroups(src));
  });
}

test("readTar() sees GNU tar's posix xattrs as raw bytes, binary capability included", async (t) => {
  const { base, src } = await sourceTree(t, "posix", 5);
  const tarFile = join(base, "x.tar");
  await gnuTar(["--format=posix", "--xattrs", "--xattrs-include=*", "-C", src, "-cf", tarFile, "."]);
  let caps = 0;
  for await (const e of readTar(createReadStream(tarFile))) {
    const cap = e.header.xattrs.get("security.capability");
    if (cap) {
      caps++;
      t.is(cap.length, 20);
      t.is(cap.readUInt32LE(0), 0x02000001);
    }
  }
  t.true(caps > 0);
});

test("a pre-1970 mtime survives GNU tar --format=gnu (base-256) and --format=posix (PAX) both ways", async (t) => {
  const base = await tempDir(t);
  const src = join(base, "src");
  await mkdir(src);
  await writeFile(join(src, "old"), "1960");
  const t1960 = { sec: -315_619_200, nsec: 0 }; // Node's utimes turns negative times into "now"
  await utimensat(C.AT_FDCWD, join(src, "old"), t1960, t1960);
  for (const format of ["gnu", "posix"]) {
    const tarFile = join(base, `${format}.tar`);
    await gnuTar([`--format=${format}`, "-C", src, "-cf", tarFile, "old"]);
    const dst = join(base, `dst-${format}`);
    await mkdir(dst);
    await applyLayer(dst, createReadStream(tarFile));
    t.is((await lstat(join(dst, "old"))).mtimeMs, -315_619_200_000, format);
  }
  const back = join(base, "strata.tar");
  await saveStream(exportTree(src), back);
  t.regex(await gnuTar(["--full-time", "-tvf", back]), /1960-01-01 00:00:00 old/);
});
