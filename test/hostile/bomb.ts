/**
 * Decompression bombs for the hostile tests: a layer tar of one file of
 * zeros, zstd-compressed (2 GiB of zeros make a blob of a few dozen KiB),
 * as a docker-archive and as an OCI layout; and running `strata` as a
 * child process with its peak RSS measured (`peak-rss.ts`).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { compressStream } from "../../src/archive/compression.js";
import { tarStream } from "../../src/archive/tar-writer.js";
import { CLI } from "../helpers/cli.js";
import { header, makeTar } from "../helpers/tar.js";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const PRELOAD = fileURLToPath(new URL("./peak-rss.js", import.meta.url));

/** A zstd bomb layer: its blob on disk, the tar's diffID, the blob's digest and size. */
export interface Bomb {
  blob: string;
  diffID: string;
  digest: string;
  size: number;
}

/** Writes a zstd layer whose tar holds one file of `zeros` zero bytes. */
export async function writeZstdBomb(file: string, zeros: number): Promise<Bomb> {
  const tarHash = createHash("sha256");
  const hashTar = new Transform({
    transform(chunk: Buffer, _e, cb) {
      tarHash.update(chunk);
      cb(null, chunk);
    },
  });
  async function* entries() {
    // No body: the tar writer fills the file with zeros.
    yield { header: { ...header({ name: "zeros" }), size: zeros } };
  }
  await pipeline(tarStream(entries()), hashTar, compressStream("zstd", 19), createWriteStream(file));
  const blob = await readFile(file);
  return { blob: file, diffID: `sha256:${tarHash.digest("hex")}`, digest: sha(blob), size: blob.length };
}

/** A config for an image of the one bomb layer. */
function bombConfig(bomb: Bomb): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: [bomb.diffID] },
    }),
  );
}

/** A docker-archive whose one layer member is the bomb (compressed layers are what `docker load` takes too). */
export async function writeBombArchive(file: string, bomb: Bomb, tag: string): Promise<void> {
  const config = bombConfig(bomb);
  const cfgName = `${sha(config).slice(7)}.json`;
  const manifest = [{ Config: cfgName, RepoTags: [tag], Layers: ["bomb/layer.tar"] }];
  await writeFile(
    file,
    await makeTar([
      { name: "bomb/" },
      { name: "bomb/layer.tar", content: await readFile(bomb.blob) },
      { name: cfgName, content: config },
      { name: "manifest.json", content: JSON.stringify(manifest) },
    ]),
  );
}

/** An OCI layout at `dir` tagged `tag` whose one layer is the bomb (media type tar+zstd). */
export async function writeBombLayout(dir: string, bomb: Bomb, tag: string): Promise<void> {
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const put = async (b: Buffer) => {
    await writeFile(join(blobs, sha(b).slice(7)), b);
    return sha(b);
  };
  await put(await readFile(bomb.blob));
  const config = bombConfig(bomb);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: await put(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", digest: bomb.digest, size: bomb.size }],
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
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
}

/** What a measured `strata` run gave. */
export interface MeasuredRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Peak resident set size (VmHWM), bytes. */
  peakRss: number;
}

/** Runs the built `strata ARGS` as a child process and measures its peak RSS. */
export async function strataMeasured(args: string[], peakFile: string): Promise<MeasuredRun> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", PRELOAD, CLI, ...args],
      { env: { ...process.env, PEAK_RSS_FILE: peakFile }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        stat(peakFile)
          .then(() => readFile(peakFile, "utf8"))
          .then((peak) => resolve({ code: typeof code === "number" ? code : 1, stdout, stderr, peakRss: Number(peak) }))
          .catch(reject);
      },
    );
  });
}
