/**
 * Image archives built from the corpus tars for the peers: a docker-archive
 * (`docker load`, `ctr images import`) and an OCI image layout (umoci). Layer
 * blobs are the corpus tars themselves, uncompressed, so every subject
 * applies the same bytes.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { copyFile, link, mkdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import type { CorpusTar } from "./corpus.js";
import { sh } from "./exec.js";

const ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x" };

/** An image config listing the layers' diffIDs. */
function imageConfig(layers: CorpusTar[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: ARCH[process.arch] ?? process.arch,
      os: "linux",
      config: { Cmd: ["/bin/true"] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${l.sha256}`) },
      history: layers.map(() => ({ created: "2023-11-14T22:13:20Z", created_by: "strata bench corpus" })),
    }),
  );
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/**
 * Writes `<dir>/<name>.docker.tar` (docker-archive: manifest.json, config,
 * one `<n>/layer.tar` per layer) tagged `strata-bench/<name>:latest`.
 */
export async function dockerArchive(dir: string, name: string, layers: CorpusTar[]): Promise<string> {
  const stage = join(dir, `${name}.docker.d`);
  const out = join(dir, `${name}.docker.tar`);
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  const config = imageConfig(layers);
  const configName = `${sha256(config)}.json`;
  await writeFile(join(stage, configName), config);
  const layerNames: string[] = [];
  for (const [i, l] of layers.entries()) {
    await mkdir(join(stage, `l${i}`));
    await symlink(resolve(l.path), join(stage, `l${i}`, "layer.tar"));
    layerNames.push(`l${i}/layer.tar`);
  }
  const manifest = [{ Config: configName, RepoTags: [`strata-bench/${name}:latest`], Layers: layerNames }];
  await writeFile(join(stage, "manifest.json"), JSON.stringify(manifest));
  await sh("tar", ["-h", "-C", stage, "-cf", out, "manifest.json", configName, ...layerNames]);
  await rm(stage, { recursive: true, force: true });
  return out;
}

async function blob(layout: string, digest: string, from: string | Buffer): Promise<void> {
  const dest = join(layout, "blobs", "sha256", digest);
  await rm(dest, { force: true });
  if (Buffer.isBuffer(from)) await writeFile(dest, from);
  else await link(from, dest).catch(() => copyFile(from, dest));
}

/** Writes an OCI image layout at `<dir>/<name>.oci` with tag `name`; returns the layout path. */
export async function ociLayout(dir: string, name: string, layers: CorpusTar[]): Promise<string> {
  const layout = join(dir, `${name}.oci`);
  await rm(layout, { recursive: true, force: true });
  await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const config = imageConfig(layers);
  await blob(layout, sha256(config), config);
  for (const l of layers) await blob(layout, l.sha256, l.path);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${sha256(config)}`,
        size: config.length,
      },
      layers: await Promise.all(
        layers.map(async (l) => ({
          mediaType: "application/vnd.oci.image.layer.v1.tar",
          digest: `sha256:${l.sha256}`,
          size: (await stat(l.path)).size,
        })),
      ),
    }),
  );
  await blob(layout, sha256(manifest), manifest);
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: `sha256:${sha256(manifest)}`,
        size: manifest.length,
        annotations: { "org.opencontainers.image.ref.name": name },
      },
    ],
  };
  await writeFile(join(layout, "index.json"), JSON.stringify(index));
  return layout;
}

/** A short file-name-safe name for an apply workload (`apply/rootfs` → `rootfs`). */
export function artifactName(workload: string): string {
  return basename(workload.replace(/\//g, "-")).replace(/^apply-/, "");
}
