/**
 * Image fixtures of the dockerd-on-strata benchmark (`bench-serve.ts`):
 * generated layers, an OCI layout of uncompressed layer
 * tars (skopeo copies it to a registry or an archive), a free TCP port.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A TCP port nothing listens on now. */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/** A layer of `n` generated files of `size` bytes under dir `name/`. */
export async function genLayer(work: string, name: string, n: number, size: number): Promise<string> {
  const dir = join(work, `gen-${name}`);
  await mkdir(join(dir, name), { recursive: true });
  for (let i = 0; i < n; i++) {
    const sub = join(dir, name, String(i % 20));
    if (i < 20) await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${i}`), randomBytes(size / 2).toString("hex"));
  }
  const tar = join(work, `${name}.tar`);
  await run("tar", ["--numeric-owner", "-cf", tar, "-C", dir, name]);
  return tar;
}

/** Writes an OCI layout with uncompressed layers; skopeo turns it into archives and pushes. */
export async function layout(dir: string, tars: string[]): Promise<void> {
  const { createHash } = await import("node:crypto");
  const { createReadStream } = await import("node:fs");
  const { stat, rename } = await import("node:fs/promises");
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const layers = [];
  for (const t of tars) {
    const h = createHash("sha256");
    for await (const c of createReadStream(t)) h.update(c as Buffer);
    const d = h.digest("hex");
    await copyFile(t, join(blobs, d));
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: `sha256:${d}`,
      size: (await stat(t)).size,
    });
  }
  const put = async (b: Buffer) => {
    const d = createHash("sha256").update(b).digest("hex");
    await writeFile(join(blobs, `${d}.tmp`), b);
    await rename(join(blobs, `${d}.tmp`), join(blobs, d));
    return { digest: `sha256:${d}`, size: b.length };
  };
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const c = await put(config);
  const m = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...c },
      layers,
    }),
  );
  const md = await put(m);
  await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...md,
          annotations: { "org.opencontainers.image.ref.name": "1" },
        },
      ],
    }),
  );
}

/** A copy of layer tar `src` with one more file, unique to `id`: a layer no store has. */
export async function uniqueLayer(src: string, dst: string, id: string): Promise<string> {
  const dir = `${dst}.uniq`;
  await mkdir(dir);
  await writeFile(join(dir, "strata-bench-id"), `${id} ${randomBytes(16).toString("hex")}\n`);
  await copyFile(src, dst);
  await run("tar", ["--numeric-owner", "-rf", dst, "-C", dir, "strata-bench-id"]);
  return dst;
}
