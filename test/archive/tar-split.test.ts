/**
 * Pristine layers: record while applying, re-assemble from the applied
 * directory, get the same bytes and sha256; tampering is caught.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { generateTree } from "../helpers/gen-tree.js";
import { gnuTar } from "../helpers/peer.js";
import { chunks } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { archive, file, header, pax, paxRecord } from "../fixtures/raw-tar.js";
import { applyLayer } from "../../src/diff/index.js";
import { StrataError } from "../../src/errors.js";
import { memoryRecorder, memorySink } from "../helpers/memory-sink.js";
import { assembleTar, indexRecords, openInLayer, TarSplitRecorder } from "../../src/archive/tar-split.js";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function records(index: Buffer) {
  const out = [];
  for await (const r of indexRecords(index)) out.push(r);
  return out;
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

/** Applies `tar` to a fresh dir with a recorder; returns the dir and the index. */
async function applyRecorded(t: Parameters<typeof tempDir>[0], tar: Buffer) {
  const dir = await tempDir(t, "strata-split-");
  const { recorder, index } = memoryRecorder();
  await applyLayer(dir, chunks(tar, 1000), { recorder });
  return { dir, index: await index() };
}

async function reassemble(dir: string, index: Buffer, digest?: string): Promise<Buffer> {
  const files = await openInLayer(dir);
  try {
    return await collect(assembleTar(index, files.open, digest === undefined ? {} : { digest }));
  } finally {
    await files.close();
  }
}

test("assembleTar() re-creates a GNU tar posix archive (xattrs, long names, hardlinks, 10 KiB record padding) byte for byte", async (t) => {
  const base = await tempDir(t);
  const src = join(base, "src");
  await mkdir(src);
  await generateTree(src, { seed: 7, entries: 120 });
  const tarFile = join(base, "in.tar");
  await gnuTar(["--format=posix", "--xattrs", "--xattrs-include=*", "-C", src, "-cf", tarFile, "."]);
  const tar = await readFile(tarFile);
  const { dir, index } = await applyRecorded(t, tar);
  const out = await reassemble(dir, index, `sha256:${sha256(tar)}`);
  t.is(out.length, tar.length);
  t.is(sha256(out), sha256(tar));
  t.log(`tar ${tar.length} bytes, index ${index.length} bytes (${((100 * index.length) / tar.length).toFixed(2)}%)`);
  t.true(index.length < tar.length / 10, "the index holds no file content");
});

test("assembleTar() keeps odd framing: global headers, a header-only type claiming a size, bytes after the end marker", async (t) => {
  const tar = Buffer.concat([
    archive(
      pax([paxRecord("comment", "hello")], "g"),
      header({ name: "l", type: "2", linkname: "a", size: 1024 }),
      file("a", "content of a"),
      file("sub/b", "bee".repeat(300)),
    ),
    Buffer.from("trailing junk"),
  ]);
  const { dir, index } = await applyRecorded(t, tar);
  const out = await reassemble(dir, index, sha256(tar));
  t.true(out.equals(tar));
  const kinds = (await records(index)).map((r) => ("raw" in r ? "raw" : `${r.name}:${r.size}`));
  t.deepEqual(kinds, ["raw", "a:12", "raw", "sub/b:900", "raw"]);
});

test("assembleTar() fails with ERR_DIGEST_MISMATCH when a file changed on disk, and when one is shorter", async (t) => {
  const tar = archive(file("a", "aaaa"), file("b", "bbbb"));
  const { dir, index } = await applyRecorded(t, tar);
  await writeFile(join(dir, "a"), "AAAA");
  const err = await t.throwsAsync(reassemble(dir, index, sha256(tar)));
  t.is((err as StrataError).code, "ERR_DIGEST_MISMATCH");
  await writeFile(join(dir, "a"), "aa");
  const short = await t.throwsAsync(reassemble(dir, index));
  t.is((short as StrataError).code, "ERR_DIGEST_MISMATCH");
});

test("openInLayer() never follows a symlink planted where a file was: no byte from outside is read", async (t) => {
  const tar = archive(file("etc/secret", "layer data"), file("top", "top data"));
  const { dir } = await applyRecorded(t, tar);
  const outside = await tempDir(t);
  await writeFile(join(outside, "host-secret"), "host data!");
  await rm(join(dir, "etc"), { recursive: true });
  await symlink(outside, join(dir, "etc")); // parent swapped for a link out
  await rm(join(dir, "top"));
  await symlink(join(outside, "host-secret"), join(dir, "top")); // file swapped for a link out
  const files = await openInLayer(dir);
  t.teardown(() => files.close());
  const parent = await t.throwsAsync(files.open("etc/secret", 10));
  t.is((parent as StrataError).code, "ENOENT", "resolved inside the root, where the link's target does not exist");
  const leaf = await t.throwsAsync(files.open("top", 8));
  t.is((leaf as StrataError).code, "ELOOP");
  const breakout = await t.throwsAsync(files.open("../x", 1));
  t.is((breakout as StrataError).code, "ERR_BREAKOUT");
});

test("indexRecords() rejects an index that is not one (ERR_TAR_SPLIT_INDEX)", async (t) => {
  const err = await t.throwsAsync(records(Buffer.from("nope")));
  t.is((err as StrataError).code, "ERR_TAR_SPLIT_INDEX");
});

test("TarSplitRecorder.finish() twice is refused", async (t) => {
  const rec = new TarSplitRecorder(memorySink().sink);
  await rec.finish();
  await t.throwsAsync(rec.finish(), { instanceOf: StrataError });
});
