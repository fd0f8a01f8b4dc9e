/**
 * Bad archives and layouts: each fails with one clear code and leaves the
 * layer sink and the image store empty.
 */
import test from "ava";
import { readFile, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { loadImages } from "../../src/image/index.js";
import { tempDir } from "../helpers/tmp.js";
import { assertEmpty, stores } from "./common.js";
import { writeFixtureLayout } from "./fixture.js";
import { ensurePackages, skopeo } from "./peers.js";

test.before(() => ensurePackages());
const code = (err: unknown) => (err as { code?: string }).code;

async function dockerArchive(t: import("ava").ExecutionContext): Promise<string> {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const archive = join(await tempDir(t), "img.tar");
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker-archive:${archive}:test/img:v1`);
  return archive;
}

test("a truncated docker-archive fails with ERR_ARCHIVE_TRUNCATED and stores nothing", async (t) => {
  const archive = await dockerArchive(t);
  const { size } = await stat(archive);
  await truncate(archive, Math.floor(size / 2) + 100);
  const s = await stores(t);
  const err = await t.throwsAsync(loadImages(archive, s.sink, s.store));
  t.is(code(err), "ERR_ARCHIVE_TRUNCATED");
  await assertEmpty(t, s);
});

test("a layer tar that is not what the config's diff_id says fails with ERR_DIGEST_MISMATCH", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  // Replace the top layer blob by other content under the same name: the blob digest check catches it.
  const m = JSON.parse(await readFile(join(fx.dir, "index.json"), "utf8"));
  const manifest = JSON.parse(await readFile(join(fx.dir, "blobs", "sha256", m.manifests[0].digest.slice(7)), "utf8"));
  const top = manifest.layers[2].digest.slice(7);
  const bytes = await readFile(join(fx.dir, "blobs", "sha256", top));
  bytes[bytes.length - 20] ^= 0xff;
  await writeFile(join(fx.dir, "blobs", "sha256", top), bytes);
  const s = await stores(t);
  const err = await t.throwsAsync(loadImages(fx.dir, s.sink, s.store));
  t.is(code(err), "ERR_DIGEST_MISMATCH");
  await assertEmpty(t, s);
});

test("a docker-archive whose layer differs from its diff_id fails with ERR_DIGEST_MISMATCH", async (t) => {
  const dir = await tempDir(t);
  const fx = await writeFixtureLayout(join(dir, "src"), "v1");
  // An unpacked docker-archive directory with the layers swapped under their names.
  const cfgName = `${fx.configDigest.slice(7)}.json`;
  await writeFile(join(dir, cfgName), await readFile(join(fx.dir, "blobs", "sha256", fx.configDigest.slice(7))));
  await writeFile(join(dir, "l0.tar"), fx.layers[0]);
  await writeFile(join(dir, "l1.tar"), fx.layers[2]);
  await writeFile(join(dir, "l2.tar"), fx.layers[1]);
  await writeFile(
    join(dir, "manifest.json"),
    JSON.stringify([{ Config: cfgName, RepoTags: ["x/y:z"], Layers: ["l0.tar", "l1.tar", "l2.tar"] }]),
  );
  const s = await stores(t);
  const err = await t.throwsAsync(loadImages(dir, s.sink, s.store));
  t.is(code(err), "ERR_DIGEST_MISMATCH");
  await assertEmpty(t, s);
});

test("a missing layer blob fails with ERR_ARCHIVE_MEMBER_MISSING and stores nothing", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const m = JSON.parse(await readFile(join(fx.dir, "index.json"), "utf8"));
  const manifest = JSON.parse(await readFile(join(fx.dir, "blobs", "sha256", m.manifests[0].digest.slice(7)), "utf8"));
  const { rm } = await import("node:fs/promises");
  await rm(join(fx.dir, "blobs", "sha256", manifest.layers[1].digest.slice(7)));
  const s = await stores(t);
  const err = await t.throwsAsync(loadImages(fx.dir, s.sink, s.store));
  t.is(code(err), "ERR_ARCHIVE_MEMBER_MISSING");
  await assertEmpty(t, s);
});

test("an unsupported layer media type fails with ERR_UNSUPPORTED_MEDIA_TYPE", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const { createHash } = await import("node:crypto");
  const index = JSON.parse(await readFile(join(fx.dir, "index.json"), "utf8"));
  const mpath = join(fx.dir, "blobs", "sha256", index.manifests[0].digest.slice(7));
  const manifest = JSON.parse(await readFile(mpath, "utf8"));
  manifest.layers[1].mediaType = "application/vnd.example.squashfs";
  const bytes = Buffer.from(JSON.stringify(manifest));
  const d = createHash("sha256").update(bytes).digest("hex");
  await writeFile(join(fx.dir, "blobs", "sha256", d), bytes);
  index.manifests[0] = { ...index.manifests[0], digest: `sha256:${d}`, size: bytes.length };
  await writeFile(join(fx.dir, "index.json"), JSON.stringify(index));
  const s = await stores(t);
  const err = await t.throwsAsync(loadImages(fx.dir, s.sink, s.store));
  t.is(code(err), "ERR_UNSUPPORTED_MEDIA_TYPE");
  await assertEmpty(t, s);
});

test("neither format, and garbage where a tar should be, fail clearly", async (t) => {
  const dir = await tempDir(t);
  const s = await stores(t);
  const e1 = await t.throwsAsync(loadImages(dir, s.sink, s.store));
  t.is(code(e1), "ERR_BAD_ARCHIVE");
  const junk = join(dir, "junk.tar");
  await writeFile(junk, gzipSync(Buffer.alloc(5000, 7)));
  const e2 = await t.throwsAsync(loadImages(junk, s.sink, s.store));
  t.true(["ERR_TAR_FORMAT", "ERR_ARCHIVE_TRUNCATED"].includes(code(e2) ?? ""), String(code(e2)));
  await assertEmpty(t, s);
});
