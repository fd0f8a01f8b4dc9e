/**
 * The benchmark corpus: layer tars generated deterministically (seeded
 * PRNG, fixed mtimes and owners), cached under the corpus directory by a key
 * of their parameters, never committed.
 *
 * - `smallfiles`: many small files in a node_modules-like tree;
 * - `largefiles`: a few large random files;
 * - `image10`: a ten-layer image (each layer adds files and deletes one file
 *   of the layer below through an AUFS whiteout);
 * - `rootfs`: a Debian rootfs (debootstrap minbase, see `rootfs.ts`) or, when
 *   that is not wanted or possible, a generated rootfs-like tree.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { EntryType, TarHeader } from "../archive/tar-header.js";
import { type TarOutputEntry, tarStream } from "../archive/tar-writer.js";
import { Prng } from "./prng.js";

/** One generated (or debootstrapped) layer tar and what it holds. */
export interface CorpusTar {
  path: string;
  files: number;
  bytes: number;
  sha256: string;
}

const MTIME = { sec: 1_700_000_000, nsec: 0 };

/** A tar header with the corpus defaults (root-owned, fixed mtime). */
export function header(name: string, type: EntryType, size = 0, mode?: number): TarHeader {
  return {
    name,
    type,
    mode: mode ?? (type === "dir" ? 0o755 : 0o644),
    uid: 0,
    gid: 0,
    uname: "root",
    gname: "root",
    size,
    mtime: MTIME,
    linkname: "",
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
  };
}

/** Emits each parent directory of `path` once, before the file itself. */
function* parents(path: string, seen: Set<string>): Generator<TarOutputEntry> {
  const parts = path.split("/").slice(0, -1);
  for (let i = 1; i <= parts.length; i++) {
    const d = `${parts.slice(0, i).join("/")}/`;
    if (seen.has(d)) continue;
    seen.add(d);
    yield { header: header(d, "dir") };
  }
}

/**
 * A pool of pseudo-random bytes that file bodies are sliced from: generating
 * every byte of a 60k-file corpus with the PRNG would dominate the run.
 */
function bytePool(seed: number, size = 8 << 20): Buffer {
  return new Prng(seed).bytes(size);
}

/** Sizes of small files: mostly a few hundred bytes to a few KiB, a long tail to 64 KiB. */
function smallSize(r: Prng): number {
  return 64 + Math.floor(16_000 * r.float() ** 3) + (r.float() < 0.01 ? r.int(0, 48_000) : 0);
}

/** Entries of the small-file layer: `count` files in a node_modules-like tree. */
export async function* smallFileEntries(count: number, seed: number): AsyncGenerator<TarOutputEntry> {
  const r = new Prng(seed);
  const pool = bytePool(seed ^ 0x5a5a);
  const seen = new Set<string>();
  const subdirs = ["lib", "dist", "dist/esm", "dist/cjs", "src", "src/utils", "types", "test/fixtures"];
  const exts = [".js", ".js", ".mjs", ".d.ts", ".json", ".map", ".md"];
  const perPkg = 30;
  for (let i = 0; i < count; i++) {
    const pkg = Math.floor(i / perPkg);
    const nested = pkg % 7 === 3 ? `node_modules/pkg-${pkg - 1}/` : "";
    const name = `node_modules/${nested}pkg-${pkg}/${subdirs[r.int(0, subdirs.length - 1)]}/f${i}${exts[r.int(0, exts.length - 1)]}`;
    yield* parents(name, seen);
    const size = smallSize(r);
    const at = r.int(0, pool.length - size - 1);
    yield { header: header(name, "file", size), body: pool.subarray(at, at + size) };
  }
}

/** Entries of the large-file layer: `count` random files of `size` bytes each. */
export async function* largeFileEntries(count: number, size: number, seed: number): AsyncGenerator<TarOutputEntry> {
  yield { header: header("data/", "dir") };
  for (let i = 0; i < count; i++) {
    const r = new Prng(seed + i);
    async function* body(): AsyncGenerator<Buffer> {
      for (let left = size; left > 0; left -= 1 << 20) yield r.bytes(Math.min(left, 1 << 20));
    }
    yield { header: header(`data/blob${i}.bin`, "file", size), body: body() };
  }
}

/** The path of file `k` of layer `layer` of the ten-layer image (diff workloads modify these). */
export function imageFileName(layer: number, k: number): string {
  return `app/l${layer}/d${k % 16}/f${k}.dat`;
}

/** Entries of layer `layer` of the multi-layer image: `files` files, plus a whiteout of the layer below's `gone.dat`. */
export async function* imageLayerEntries(layer: number, files: number, seed: number): AsyncGenerator<TarOutputEntry> {
  const r = new Prng(seed * 131 + layer);
  const pool = bytePool(seed + layer);
  const seen = new Set<string>();
  if (layer > 0) {
    yield* parents(`app/l${layer - 1}/x`, seen);
    yield { header: header(`app/l${layer - 1}/.wh.gone.dat`, "file") };
  }
  yield* parents(`app/l${layer}/gone.dat`, seen);
  yield { header: header(`app/l${layer}/gone.dat`, "file", 5), body: Buffer.from("gone\n") };
  for (let k = 0; k < files; k++) {
    const name = imageFileName(layer, k);
    yield* parents(name, seen);
    const size = smallSize(r);
    const at = r.int(0, pool.length - size - 1);
    yield { header: header(name, "file", size), body: pool.subarray(at, at + size) };
  }
}

/** Entries of a generated rootfs-like tree (used by `--quick`, or when debootstrap is unavailable). */
export async function* rootfsLikeEntries(files: number, seed: number): AsyncGenerator<TarOutputEntry> {
  const r = new Prng(seed);
  const pool = bytePool(seed ^ 0x1234);
  const seen = new Set<string>();
  for (const d of ["bin/", "etc/", "usr/", "usr/bin/", "usr/lib/", "usr/share/", "var/", "var/lib/", "tmp/"]) {
    seen.add(d);
    yield { header: header(d, "dir", 0, d === "tmp/" ? 0o1777 : 0o755) };
  }
  const areas = ["usr/bin", "usr/lib/x86_64-linux-gnu", "usr/share/doc", "usr/share/locale", "etc", "var/lib/dpkg"];
  for (let i = 0; i < files; i++) {
    const area = areas[r.int(0, areas.length - 1)]!;
    const name = `${area}/pkg${i % 97}/file${i}`;
    yield* parents(name, seen);
    const size = area === "usr/bin" ? r.int(8_000, 200_000) : smallSize(r);
    const at = r.int(0, pool.length - size - 1);
    yield {
      header: header(name, "file", size, area === "usr/bin" ? 0o755 : 0o644),
      body: pool.subarray(at, at + size),
    };
    if (i % 50 === 0) {
      const link = `usr/bin/link${i}`;
      yield { header: { ...header(link, "symlink"), linkname: `../../${name}` } };
    }
  }
}

/**
 * Writes `entries` as a tar at `<dir>/<name>-<key>.tar` unless it exists
 * already (the key hashes the generator parameters), and returns it with its
 * file count, byte count and sha256.
 */
export async function cachedTar(
  dir: string,
  name: string,
  params: Record<string, number | string>,
  entries: () => AsyncIterable<TarOutputEntry>,
): Promise<CorpusTar> {
  const key = createHash("sha256")
    .update(JSON.stringify({ name, params, v: 1 }))
    .digest("hex")
    .slice(0, 12);
  const path = join(dir, `${name}-${key}.tar`);
  const meta = `${path}.json`;
  try {
    const m = JSON.parse(await readFile(meta, "utf8")) as CorpusTar;
    if ((await stat(path)).isFile()) return { ...m, path };
  } catch {
    // not cached yet
  }
  await mkdir(dir, { recursive: true });
  let files = 0;
  let bytes = 0;
  async function* counted(): AsyncGenerator<TarOutputEntry> {
    for await (const e of entries()) {
      if (e.header.type === "file") {
        files++;
        bytes += e.header.size;
      }
      yield e;
    }
  }
  const hash = createHash("sha256");
  const tmp = `${path}.tmp`;
  const src: Readable = tarStream(counted());
  src.on("data", (c: Buffer) => hash.update(c));
  await pipeline(src, createWriteStream(tmp));
  await rename(tmp, path);
  const result: CorpusTar = { path, files, bytes, sha256: hash.digest("hex") };
  await writeFile(meta, JSON.stringify(result));
  return result;
}
