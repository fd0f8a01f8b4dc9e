/**
 * docker-archive and OCI layout: load what skopeo writes, save what skopeo,
 * umoci (and docker load, when a dockerd is available) read back.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { inspectImage, loadImages, saveDockerArchive, saveOciLayout } from "../../src/image/index.js";
import { tempDir } from "../helpers/tmp.js";
import { chainIDsOf, layerTree, stores, tree, umociRootfs } from "./common.js";
import { writeFixtureLayout } from "./fixture.js";
import { ensurePackages, peerDocker, run, skopeo } from "./peers.js";

test.before(() => ensurePackages());

test("load of skopeo's docker-archive gives the image, tagged, with umoci's tree", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const archive = join(await tempDir(t), "img.tar");
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker-archive:${archive}:test/img:v1`);
  const s = await stores(t);
  const [rec] = await loadImages(archive, s.sink, s.store);
  t.is(rec.id, fx.configDigest);
  t.deepEqual(rec.repoTags, ["docker.io/test/img:v1"]);
  t.deepEqual((await inspectImage(s.store, "test/img:v1")).RepoTags, ["test/img:v1"]);
  t.deepEqual(await layerTree(s, rec.layers[2].chainID), await tree(await umociRootfs(t, fx.dir, "v1")));
});

test("save as docker-archive round-trips through strata and skopeo reads it", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const s = await stores(t);
  await loadImages(fx.dir, s.sink, s.store, { tag: "round/trip:1" });
  const out = join(await tempDir(t), "saved.tar");
  await saveDockerArchive(s.store, s.sink, ["round/trip:1"], out);
  const cfg = JSON.parse(await skopeo("inspect", "--config", `docker-archive:${out}`));
  t.deepEqual(cfg.rootfs.diff_ids, fx.diffIDs);
  const again = await stores(t);
  const [rec] = await loadImages(out, again.sink, again.store);
  t.is(rec.id, fx.configDigest);
  t.deepEqual(rec.repoTags, ["docker.io/round/trip:1"]);
  t.deepEqual(await layerTree(again, rec.layers[2].chainID), await tree(await umociRootfs(t, fx.dir, "v1")));
});

test("save as OCI layout (plain and gzip) is unpacked by umoci and copied by skopeo", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const s = await stores(t);
  await loadImages(fx.dir, s.sink, s.store, { tag: "oci/out:v1" });
  const want = await tree(await umociRootfs(t, fx.dir, "v1"));
  for (const compression of ["none", "gzip"] as const) {
    const dir = join(await tempDir(t), "layout");
    await saveOciLayout(s.store, s.sink, ["oci/out:v1"], dir, { compression });
    t.deepEqual(await tree(await umociRootfs(t, dir, "v1")), want, compression);
    const cfg = JSON.parse(await skopeo("inspect", "--config", `oci:${dir}:v1`));
    t.deepEqual(cfg.rootfs.diff_ids, fx.diffIDs, compression);
    const archive = join(await tempDir(t), "via-skopeo.tar");
    await skopeo("copy", `oci:${dir}:v1`, `docker-archive:${archive}:x/y:z`);
    const back = await stores(t);
    const [rec] = await loadImages(archive, back.sink, back.store);
    t.is(rec.id, fx.configDigest, compression);
  }
});

test("an OCI layout with a nested index loads the host platform and refuses a missing one", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const index = JSON.parse(await readFile(join(fx.dir, "index.json"), "utf8"));
  const inner = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: index.manifests,
    }),
  );
  const { createHash } = await import("node:crypto");
  const d = createHash("sha256").update(inner).digest("hex");
  await writeFile(join(fx.dir, "blobs", "sha256", d), inner);
  await writeFile(
    join(fx.dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
          digest: `sha256:${d}`,
          size: inner.length,
          annotations: { "org.opencontainers.image.ref.name": "nested" },
        },
      ],
    }),
  );
  const s = await stores(t);
  const [rec] = await loadImages(fx.dir, s.sink, s.store, { platform: { os: "linux", architecture: "amd64" } });
  t.is(rec.id, fx.configDigest);
  t.deepEqual(rec.repoTags, [], "a bare ref.name is not an image name");
  const other = await stores(t);
  const err = await t.throwsAsync(
    loadImages(fx.dir, other.sink, other.store, { platform: { os: "linux", architecture: "s390x" } }),
  );
  t.is((err as { code?: string }).code, "ERR_PLATFORM_NOT_FOUND");
});

test("tag, images, inspect and rmi keep names and report unused layers", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const s = await stores(t);
  const [rec] = await loadImages(fx.dir, s.sink, s.store, { tag: "a/b:1" });
  await s.store.tag("a/b:1", "c/d:2");
  t.deepEqual((await s.store.resolve("c/d:2")).id, rec.id);
  t.deepEqual((await s.store.resolve(rec.id.slice(7, 19))).id, rec.id);
  t.deepEqual(
    (await s.store.list()).map((r) => r.repoTags),
    [["docker.io/a/b:1", "docker.io/c/d:2"]],
  );
  const ins = await inspectImage(s.store, "c/d:2");
  t.deepEqual(ins.RepoTags, ["a/b:1", "c/d:2"]);
  t.deepEqual(ins.RootFS.Layers, fx.diffIDs);
  t.true(rec.layers.every((l) => typeof l.tarSize === "number" && l.tarSize > 0));
  const err = await t.throwsAsync(s.store.remove(rec.id));
  t.is((err as { code?: string }).code, "ERR_IMAGE_IN_USE");
  const r1 = await s.store.remove("a/b:1");
  t.deepEqual(r1, { untagged: ["a/b:1"], deleted: [], unusedChainIDs: [] });
  const r2 = await s.store.remove("c/d:2");
  t.deepEqual(r2.deleted, [rec.id]);
  t.deepEqual(
    r2.unusedChainIDs,
    rec.layers.map((l) => l.chainID),
  );
  const gone = await t.throwsAsync(s.store.resolve("c/d:2"));
  t.is((gone as { code?: string }).code, "ERR_IMAGE_NOT_FOUND");
});

test("docker load accepts strata's docker-archive and strata loads docker save (needs the peer dockerd)", async (t) => {
  const peer = await peerDocker(t);
  if (typeof peer === "string") {
    t.log(`skipped: ${peer}`);
    t.pass();
    return;
  }
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const s = await stores(t);
  const name = `strata-test/load-${process.pid}:v1`;
  await loadImages(fx.dir, s.sink, s.store, { tag: name });
  const out = join(await tempDir(t), "for-docker.tar");
  await saveDockerArchive(s.store, s.sink, [name], out);
  t.teardown(() => peer.docker("rmi", "-f", name).catch(() => undefined));
  await peer.docker("load", "-i", out);
  t.is((await peer.docker("image", "inspect", "-f", "{{.Id}}", name)).trim(), fx.configDigest);
  const back = join(await tempDir(t), "from-docker.tar");
  await peer.docker("save", "-o", back, name);
  const again = await stores(t);
  const [rec] = await loadImages(back, again.sink, again.store);
  t.is(rec.id, fx.configDigest);
  t.deepEqual(rec.repoTags, [`docker.io/${name}`]);
  t.deepEqual(await layerTree(again, rec.layers[2].chainID), await tree(await umociRootfs(t, fx.dir, "v1")));
});

test("a Docker 25+ archive (manifest.json inside an OCI layout) loads, and its blobs are verified by name", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const index = JSON.parse(await readFile(join(fx.dir, "index.json"), "utf8"));
  const manifest = JSON.parse(
    await readFile(join(fx.dir, "blobs", "sha256", index.manifests[0].digest.slice(7)), "utf8"),
  );
  const entry = {
    Config: `blobs/sha256/${fx.configDigest.slice(7)}`,
    RepoTags: ["new/style:1"],
    Layers: manifest.layers.map((l: { digest: string }) => `blobs/sha256/${l.digest.slice(7)}`),
  };
  await writeFile(join(fx.dir, "manifest.json"), JSON.stringify([entry]));
  const archive = join(await tempDir(t), "new-style.tar");
  await run("tar", ["-cf", archive, "-C", fx.dir, "."]);
  const s = await stores(t);
  const [rec] = await loadImages(archive, s.sink, s.store);
  t.is(rec.id, fx.configDigest);
  t.deepEqual(rec.repoTags, ["docker.io/new/style:1"]);

  const victim = join(fx.dir, entry.Layers[1]);
  const bytes = await readFile(victim);
  bytes[bytes.length >> 1] ^= 0xff;
  await writeFile(victim, bytes);
  const bad = await stores(t);
  const err = await t.throwsAsync(loadImages(fx.dir, bad.sink, bad.store));
  t.is((err as { code?: string }).code, "ERR_DIGEST_MISMATCH");
  t.deepEqual(await chainIDsOf(bad), []);
});

test("load takes a docker-archive compressed with gzip, zstd, bzip2 or xz, as docker load does", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const dir = await tempDir(t);
  const archive = join(dir, "img.tar");
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker-archive:${archive}:test/zipped:v1`);
  for (const [tool, ext] of [
    ["gzip", "gz"],
    ["zstd", "zst"],
    ["bzip2", "bz2"],
    ["xz", "xz"],
  ] as const) {
    await run(tool, ["-k", "-q", archive]);
    const s = await stores(t);
    const [rec] = await loadImages(`${archive}.${ext}`, s.sink, s.store);
    t.is(rec!.id, fx.configDigest, tool);
    t.deepEqual(rec!.repoTags, ["docker.io/test/zipped:v1"], tool);
    t.deepEqual(await readdir(join(s.layers.db.dir, "tmp")), [], `${tool}: the spool is gone`);
  }
});

test("load reads a stream (stdin), plain or gzip, and save writes one that loads back", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const dir = await tempDir(t);
  const archive = join(dir, "img.tar");
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker-archive:${archive}:test/stream:v1`);
  await run("gzip", ["-k", archive]);
  const s = await stores(t);
  for (const file of [archive, `${archive}.gz`]) {
    const [rec] = await loadImages(createReadStream(file), s.sink, s.store);
    t.is(rec!.id, fx.configDigest, file);
  }
  // save to a stream: the bytes a `strata save IMAGE | …` pipe carries.
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  await saveDockerArchive(s.store, s.sink, ["test/stream:v1"], sink);
  const again = await stores(t);
  const [rec] = await loadImages(Readable.from([Buffer.concat(chunks)]), again.sink, again.store);
  t.is(rec!.id, fx.configDigest);
  t.deepEqual(await layerTree(again, rec!.layers[2]!.chainID), await tree(await umociRootfs(t, fx.dir, "v1")));
});

test("a save streamed into docker load, and docker save | gzip streamed into load (needs the peer dockerd)", async (t) => {
  const peer = await peerDocker(t);
  if (typeof peer === "string") {
    t.log(`skipped: ${peer}`);
    t.pass();
    return;
  }
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  const s = await stores(t);
  const name = `strata-test/pipe-${process.pid}:v1`;
  await loadImages(fx.dir, s.sink, s.store, { tag: name });
  t.teardown(() => peer.docker("rmi", "-f", name).catch(() => undefined));
  // strata save IMAGE | docker load
  const load = spawn("/usr/bin/docker", ["-H", "unix:///run/peer-docker.sock", "load"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  load.stdout.on("data", (d: Buffer) => (out += d.toString()));
  load.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = once(load, "exit");
  await saveDockerArchive(s.store, s.sink, [name], load.stdin);
  t.is((await exited)[0], 0, out);
  t.is((await peer.docker("image", "inspect", "-f", "{{.Id}}", name)).trim(), fx.configDigest);
  // docker save IMAGE | gzip | strata load
  const save = spawn("sh", ["-c", `/usr/bin/docker -H unix:///run/peer-docker.sock save ${name} | gzip`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const again = await stores(t);
  const [rec] = await loadImages(save.stdout, again.sink, again.store);
  t.is(rec!.id, fx.configDigest);
  t.deepEqual(rec!.repoTags, [`docker.io/${name}`]);
});
