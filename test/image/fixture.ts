/**
 * A small three-layer test image built from tars the test writes: files,
 * dirs, a symlink, a hardlink, a whiteout, an opaque directory and a 1 MiB
 * file, written as an OCI layout with gzip layers (what registries serve),
 * so skopeo can copy it anywhere.
 */
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { makeTar } from "../helpers/tar.js";

const sha = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Deterministic pseudo-random bytes. */
export function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** The uncompressed layer tars of the fixture, bottom first. */
export async function fixtureLayers(seed = 1): Promise<Buffer[]> {
  return [
    await makeTar([
      { name: "etc/" },
      { name: "etc/os-release", content: `ID=strata-test\nSEED=${seed}\n` },
      { name: "bin/" },
      { name: "bin/tool", content: "#!/bin/sh\necho hi\n", mode: 0o755 },
      { name: "bin/alias", type: "symlink", linkname: "tool" },
      { name: "data/" },
      { name: "data/big.bin", content: noise(1 << 20, seed) },
      { name: "data/gone.txt", content: "to be deleted" },
      { name: "opq/" },
      { name: "opq/old.txt", content: "hidden by opaque" },
    ]),
    await makeTar([
      { name: "data/" },
      { name: "data/.wh.gone.txt", mode: 0o600 },
      { name: "data/new.txt", content: "layer two", uid: 1000, gid: 1000 },
      { name: "etc/" },
      { name: "etc/os-release", content: `ID=strata-test\nSEED=${seed}\nLAYER=2\n` },
    ]),
    await makeTar([
      { name: "opq/" },
      { name: "opq/.wh..wh..opq", mode: 0o755 },
      { name: "opq/fresh.txt", content: "after opaque" },
      { name: "bin/" },
      { name: "bin/tool2", content: "#!/bin/sh\necho two\n", mode: 0o755 },
      { name: "bin/hard", type: "link", linkname: "bin/tool2", mode: 0o755 },
    ]),
  ];
}

/** An image written as an OCI layout. */
export interface Fixture {
  dir: string;
  tag: string;
  layers: Buffer[];
  diffIDs: string[];
  configDigest: string;
}

/** Writes the fixture as an OCI layout with gzip layers under `dir`, tagged `tag`. */
export async function writeFixtureLayout(dir: string, tag = "v1", seed = 1, layers?: Buffer[]): Promise<Fixture> {
  const tars = layers ?? (await fixtureLayers(seed));
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const put = async (b: Buffer) => {
    const d = sha(b);
    await writeFile(join(blobs, d.slice(7)), b);
    return d;
  };
  const diffIDs = tars.map((t) => sha(t));
  const layerDescs = [];
  for (const t of tars) {
    const gz = gzipSync(t);
    layerDescs.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: await put(gz),
      size: gz.length,
    });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: "2024-01-01T00:00:00Z",
      config: { Cmd: ["/bin/tool"], Env: [`SEED=${seed}`] },
      rootfs: { type: "layers", diff_ids: diffIDs },
      history: tars.map((_, i) => ({ created: "2024-01-01T00:00:00Z", created_by: `layer ${i}` })),
    }),
  );
  const configDigest = await put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: layerDescs,
    }),
  );
  const md = await put(manifest);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: md,
          size: manifest.length,
          platform: { architecture: "amd64", os: "linux" },
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
  return { dir, tag, layers: tars, diffIDs, configDigest };
}
