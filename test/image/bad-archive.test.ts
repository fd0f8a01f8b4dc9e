/**
 * Bad archives and layouts: each fails with one clear code and leaves the
 * stores empty. Directory archives are read beneath their directory, and
 * nothing is read whole beyond its cap.
 */
import test from "ava";
import { mkdir, open, readFile, rename, rm, stat, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { BLOCK, encodeHeader } from "../../src/archive/tar-header.js";
import { loadImages } from "../../src/image/index.js";
import { C, mknod } from "../../src/native.js";
import { header, makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { assertEmpty, stores } from "./common.js";
import { writeFixtureLayout } from "./fixture.js";
import { ensurePackages, run, skopeo } from "./peers.js";

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

/** An unpacked docker-archive of the fixture under `dir`: `<config>.json`, `l0.tar`…, manifest.json. */
async function dockerArchiveDir(dir: string, seed = 1) {
  const fx = await writeFixtureLayout(join(dir, "..", `src-${seed}`), "v1", seed);
  const cfgName = `${fx.configDigest.slice(7)}.json`;
  await writeFile(join(dir, cfgName), await readFile(join(fx.dir, "blobs", "sha256", fx.configDigest.slice(7))));
  const layers = fx.layers.map((_, i) => `l${i}.tar`);
  for (const [i, name] of layers.entries()) await writeFile(join(dir, name), fx.layers[i]!);
  await writeFile(
    join(dir, "manifest.json"),
    JSON.stringify([{ Config: cfgName, RepoTags: ["x/y:z"], Layers: layers }]),
  );
  return { fx, cfgName, layers };
}

test("load DIR refuses a layer symlinked to a host file (absolute or by ..), with ERR_ARCHIVE_MEMBER_OUTSIDE", async (t) => {
  for (const how of ["absolute", "relative"]) {
    const base = await tempDir(t);
    const dir = join(base, "archive");
    await mkdir(dir);
    const { layers } = await dockerArchiveDir(dir);
    // The host file is the very layer, so following the link would load fine: only the path is wrong.
    await rename(join(dir, layers[1]!), join(base, "outside.tar"));
    await symlink(how === "absolute" ? join(base, "outside.tar") : "../outside.tar", join(dir, layers[1]!));
    const s = await stores(t);
    const err = await t.throwsAsync(loadImages(dir, s.sink, s.store));
    t.is(code(err), "ERR_ARCHIVE_MEMBER_OUTSIDE", `${how}: ${err?.message}`);
    await assertEmpty(t, s);
  }
});

test("load DIR follows a symlink that stays inside the directory (Docker 25's layer links)", async (t) => {
  const dir = join(await tempDir(t), "archive");
  await mkdir(join(dir, "blobs"), { recursive: true });
  const { fx, layers } = await dockerArchiveDir(dir);
  await rename(join(dir, layers[2]!), join(dir, "blobs", "top.tar"));
  await symlink("blobs/top.tar", join(dir, layers[2]!));
  const s = await stores(t);
  const [rec] = await loadImages(dir, s.sink, s.store);
  t.is(rec!.id, fx.configDigest);
});

test("load DIR refuses a config that is /dev/zero, a device node or a FIFO, without reading it", async (t) => {
  for (const kind of ["symlink to /dev/zero", "char device", "fifo"]) {
    const dir = join(await tempDir(t), "archive");
    await mkdir(dir);
    const { cfgName } = await dockerArchiveDir(dir);
    await rm(join(dir, cfgName));
    if (kind === "symlink to /dev/zero") await symlink("/dev/zero", join(dir, cfgName));
    else if (kind === "char device") await mknod(join(dir, cfgName), C.S_IFCHR | 0o644, 1, 5);
    else await run("mkfifo", [join(dir, cfgName)]);
    const s = await stores(t);
    const err = await t.throwsAsync(loadImages(dir, s.sink, s.store));
    t.is(
      code(err),
      kind.startsWith("symlink") ? "ERR_ARCHIVE_MEMBER_OUTSIDE" : "ERR_ARCHIVE_MEMBER_NOT_FILE",
      `${kind}: ${err?.message}`,
    );
    await assertEmpty(t, s);
  }
});

test("a 1 GiB config member in a tar archive is refused by its size, before it is read", async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, "src");
  await mkdir(src);
  const { cfgName, layers } = await dockerArchiveDir(src);
  // The archive: a 1 GiB config member (a hole in a sparse file), then the other members.
  const archive = join(dir, "big-config.tar");
  const rest = await makeTar(
    await Promise.all(
      ["manifest.json", ...layers].map(async (name) => ({ name, content: await readFile(join(src, name)) })),
    ),
  );
  const fh = await open(archive, "w");
  await fh.write(encodeHeader({ ...header({ name: cfgName }), size: 1 << 30 }), 0, BLOCK, 0);
  await fh.write(rest, 0, rest.length, BLOCK + (1 << 30));
  await fh.close();
  const rss = process.memoryUsage().rss;
  const s = await stores(t);
  const err = await t.throwsAsync(loadImages(archive, s.sink, s.store));
  t.is(code(err), "ERR_ARCHIVE_MEMBER_TOO_LARGE", err?.message);
  t.true(process.memoryUsage().rss - rss < 256 << 20, "the config was not read into memory");
  await assertEmpty(t, s);
});

test("an uncompressed OCI layer whose blob is not its declared size fails with ERR_DIGEST_MISMATCH before it is applied", async (t) => {
  const { createHash } = await import("node:crypto");
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const index = JSON.parse(await readFile(join(fx.dir, "index.json"), "utf8"));
  const manifest = JSON.parse(
    await readFile(join(fx.dir, "blobs", "sha256", index.manifests[0].digest.slice(7)), "utf8"),
  );
  // Layer 1 as an uncompressed blob (digest = diffID), its descriptor one byte short.
  await writeFile(join(fx.dir, "blobs", "sha256", fx.diffIDs[1]!.slice(7)), fx.layers[1]!);
  manifest.layers[1] = {
    mediaType: "application/vnd.oci.image.layer.v1.tar",
    digest: fx.diffIDs[1],
    size: fx.layers[1]!.length - 1,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  await writeFile(join(fx.dir, "blobs", "sha256", sha(bytes)), bytes);
  index.manifests[0] = { ...index.manifests[0], digest: `sha256:${sha(bytes)}`, size: bytes.length };
  await writeFile(join(fx.dir, "index.json"), JSON.stringify(index));
  const s = await stores(t);
  const applied: number[] = [];
  const err = await t.throwsAsync(
    loadImages(fx.dir, s.sink, s.store, { progress: (e) => e.status === "applying" && applied.push(e.layer) }),
  );
  t.is(code(err), "ERR_DIGEST_MISMATCH", err?.message);
  t.deepEqual(applied, [], "checked before any layer was applied");
  await assertEmpty(t, s);
});
