/**
 * Pull and push against a real Distribution registry (docker-registry),
 * with skopeo as the peer on the other side.
 */
import test from "ava";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  chainIDs,
  inspectImage,
  loadImages,
  parsePlatform,
  type ProgressEvent,
  pullImage,
  pushImage,
} from "../../src/image/index.js";
import { tempDir } from "../helpers/tmp.js";
import { layerTree, stores, tree, umociRootfs } from "./common.js";
import { writeFixtureLayout } from "./fixture.js";
import { run, skopeo, startRegistry } from "./peers.js";

test("pull of an image skopeo pushed gives umoci's tree, and a second pull fetches nothing", async (t) => {
  const reg = await startRegistry(t);
  const fx = await writeFixtureLayout(await tempDir(t), "v1");
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker://${reg.addr}/test/img:v1`, "--dest-tls-verify=false");
  const s = await stores(t);
  const events: ProgressEvent[] = [];
  const { image: rec, digest } = await pullImage(`${reg.addr}/test/img:v1`, s.sink, s.store, {
    progress: (e) => events.push(e),
    concurrency: 3,
  });
  t.is(rec.id, fx.configDigest);
  const manifestDigest = (
    await run("skopeo", [
      "inspect",
      "--tls-verify=false",
      "--format",
      "{{.Digest}}",
      `docker://${reg.addr}/test/img:v1`,
    ])
  ).stdout.trim();
  t.is(digest, manifestDigest, "the pull reports the manifest digest, as docker pull's Digest: line");
  t.deepEqual(rec.repoDigests, [`${reg.addr}/test/img@${manifestDigest}`]);
  t.deepEqual(
    rec.layers.map((l) => l.diffID),
    fx.diffIDs,
  );
  t.deepEqual(
    rec.layers.map((l) => l.chainID),
    chainIDs(fx.diffIDs),
  );
  t.deepEqual(rec.repoTags, [`${reg.addr}/test/img:v1`]);
  t.is(rec.repoDigests.length, 1);
  t.true(events.some((e) => e.status === "downloading"));
  t.deepEqual(await layerTree(s, rec.layers[2].chainID), await tree(await umociRootfs(t, fx.dir, "v1")));

  const again: ProgressEvent[] = [];
  await pullImage(`${reg.addr}/test/img:v1`, s.sink, s.store, { progress: (e) => again.push(e) });
  t.deepEqual(
    again.map((e) => e.status),
    ["exists", "exists", "exists"],
  );
  const inspect = await inspectImage(s.store, `${reg.addr}/test/img:v1`, s.layers);
  t.deepEqual(inspect.RootFS, { Type: "layers", Layers: fx.diffIDs });
  t.is(inspect.Architecture, "amd64");
  t.deepEqual(inspect.Config?.Cmd, ["/bin/tool"]);
  t.is(inspect.GraphDriver.Name, "vfs");
  t.is(
    inspect.Size,
    (await s.layers.layers()).reduce((n, l) => n + l.size, 0),
  );
});

test("push by strata (monolithic, chunked, mounted) is read back by skopeo with the same diffIDs", async (t) => {
  const reg = await startRegistry(t);
  const fx = await writeFixtureLayout(await tempDir(t), "v1", 7);
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker://${reg.addr}/src/img:v1`, "--dest-tls-verify=false");
  const s = await stores(t);
  await pullImage(`${reg.addr}/src/img:v1`, s.sink, s.store);

  // Same registry, other repository: the blobs are mounted, not uploaded.
  const mounted = await pushImage(s.store, s.sink, `${reg.addr}/src/img:v1`, `${reg.addr}/copy/img:v1`);
  t.deepEqual(mounted.layers, ["mounted", "mounted", "mounted"]);
  // A record without blob knowledge: layers are gzipped and uploaded, in 64 KiB PATCHes.
  const fresh = await stores(t);
  await loadImages(fx.dir, fresh.sink, fresh.store, { tag: "local/img:v1" });
  const s1 = await pushImage(fresh.store, fresh.sink, "local/img:v1", `${reg.addr}/pushed/chunked:v1`, {
    chunkSize: 64 << 10,
  });
  t.deepEqual(s1.layers, ["pushed", "pushed", "pushed"]);
  const s2 = await pushImage(fresh.store, fresh.sink, "local/img:v1", `${reg.addr}/pushed/mono:v1`);
  t.deepEqual(s2.layers, ["pushed", "pushed", "pushed"]);

  for (const repo of ["copy/img", "pushed/chunked", "pushed/mono"]) {
    const cfg = JSON.parse(
      await skopeo("inspect", "--tls-verify=false", "--config", `docker://${reg.addr}/${repo}:v1`),
    );
    t.deepEqual(cfg.rootfs.diff_ids, fx.diffIDs, repo);
    const out = join(await tempDir(t), "oci");
    await skopeo("copy", "--src-tls-verify=false", `docker://${reg.addr}/${repo}:v1`, `oci:${out}:v1`);
    t.deepEqual(await tree(await umociRootfs(t, out, "v1")), await tree(await umociRootfs(t, fx.dir, "v1")), repo);
  }
  const digest = (
    await run("skopeo", [
      "inspect",
      "--tls-verify=false",
      "--format",
      "{{.Digest}}",
      `docker://${reg.addr}/pushed/mono:v1`,
    ])
  ).stdout.trim();
  t.is(digest, s2.digest);
});

test("a manifest list pushed by skopeo --all is resolved to the host platform or the one asked for", async (t) => {
  const reg = await startRegistry(t);
  const dir = await tempDir(t);
  const amd = await writeFixtureLayout(dir, "amd", 31);
  const amdEntry = JSON.parse(await readFile(join(dir, "index.json"), "utf8")).manifests[0];
  const arm = await writeFixtureLayout(dir, "arm", 32);
  const armEntry = JSON.parse(await readFile(join(dir, "index.json"), "utf8")).manifests[0];
  const list = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { ...amdEntry, annotations: undefined, platform: { os: "linux", architecture: "amd64" } },
        { ...armEntry, annotations: undefined, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      ],
    }),
  );
  const d = createHash("sha256").update(list).digest("hex");
  await writeFile(join(dir, "blobs", "sha256", d), list);
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
          digest: `sha256:${d}`,
          size: list.length,
          annotations: { "org.opencontainers.image.ref.name": "multi" },
        },
      ],
    }),
  );
  await skopeo("copy", "--all", `oci:${dir}:multi`, `docker://${reg.addr}/multi/img:1`, "--dest-tls-verify=false");
  const s = await stores(t);
  const { image: host } = await pullImage(`${reg.addr}/multi/img:1`, s.sink, s.store, {
    platform: { os: "linux", architecture: "amd64" },
  });
  t.is(host.id, amd.configDigest);
  const { image: other } = await pullImage(`${reg.addr}/multi/img:1`, s.sink, s.store, {
    platform: parsePlatform("linux/arm64"),
  });
  t.is(other.id, arm.configDigest);
  t.is(other.repoDigests[0], host.repoDigests[0], "the repo digest is the list's");
  const err = await t.throwsAsync(
    pullImage(`${reg.addr}/multi/img:1`, s.sink, s.store, { platform: parsePlatform("linux/s390x") }),
  );
  t.is((err as { code?: string }).code, "ERR_PLATFORM_NOT_FOUND");
});
