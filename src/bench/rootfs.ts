/**
 * The Debian rootfs layer: debootstrap (minbase, bookworm) from the mirror in
 * the machine's apt sources, tarred with GNU tar, cached under the corpus
 * directory. Falls back to a generated rootfs-like tree when debootstrap is
 * missing or fails, and says so (the result records which it was).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { access, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { type CorpusTar, cachedTar, rootfsLikeEntries } from "./corpus.js";

const run = promisify(execFile);

/** The rootfs layer and how it was made. */
export interface RootfsTar extends CorpusTar {
  kind: "debian" | "rootfs-like";
  /** Why a rootfs-like tree stands in for Debian, when it does. */
  note?: string;
}

async function which(cmd: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      await access(join(dir, cmd));
      return join(dir, cmd);
    } catch {
      // next
    }
  }
  for (const dir of ["/usr/sbin", "/sbin"]) {
    try {
      await access(join(dir, cmd));
      return join(dir, cmd);
    } catch {
      // next
    }
  }
  return undefined;
}

/** The Debian mirror named in the apt sources (deb822 first, then sources.list). */
async function debianMirror(): Promise<string | undefined> {
  try {
    for (const f of await readdir("/etc/apt/sources.list.d")) {
      if (!f.endsWith(".sources")) continue;
      const m = /^URIs:\s*(\S+)/m.exec(await readFile(join("/etc/apt/sources.list.d", f), "utf8"));
      if (m && !m[1]!.includes("security")) return m[1];
    }
  } catch {
    // no deb822 sources
  }
  try {
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(await readFile("/etc/apt/sources.list", "utf8"));
    if (m) return m[1];
  } catch {
    // none
  }
  return undefined;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

/**
 * A layer tar made outside the generator (the Debian rootfs, a corpus tar of
 * `scripts/make-corpus.sh`) described as a corpus tar: files and bytes from
 * GNU tar's listing, and its sha256, cached beside it in `<path>.json`.
 */
export async function describeTar(path: string): Promise<CorpusTar> {
  try {
    const m = JSON.parse(await readFile(`${path}.json`, "utf8")) as CorpusTar;
    if (m.sha256 && m.bytes >= 0) return { ...m, path };
  } catch {
    // not described yet
  }
  const { stdout } = await run("tar", ["-tvf", path], { maxBuffer: 256 << 20 });
  let files = 0;
  let bytes = 0;
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("-")) continue;
    files++;
    bytes += Number(line.split(/\s+/)[2] ?? 0);
  }
  const result: CorpusTar = { path, files, bytes, sha256: await sha256File(path) };
  await writeFile(`${path}.json`, JSON.stringify(result));
  return result;
}

/** Debootstraps (once) and returns the cached Debian rootfs tar; throws with the reason on failure. */
async function debianTar(corpusDir: string, log: (s: string) => void): Promise<RootfsTar> {
  const path = join(corpusDir, "rootfs-debian.tar");
  try {
    await access(path);
    return { ...(await describeTar(path)), kind: "debian" }; // cached, or tarred by a run that stopped before its sidecar
  } catch {
    // debootstrap it
  }
  const debootstrap = await which("debootstrap");
  if (!debootstrap) throw new Error("debootstrap is not installed");
  const mirror = await debianMirror();
  if (!mirror) throw new Error("no Debian mirror in the apt sources");
  const dir = join(corpusDir, "rootfs-debian.tmp");
  await rm(dir, { recursive: true, force: true });
  log(`corpus: debootstrap --variant=minbase bookworm (${mirror}); this takes a few minutes, once`);
  try {
    await run(debootstrap, ["--variant=minbase", "bookworm", dir, mirror], { maxBuffer: 64 << 20 });
    await run("tar", ["--numeric-owner", "--xattrs", "-C", dir, "-cf", `${path}.tmp`, "."]);
    await rename(`${path}.tmp`, path);
    return { ...(await describeTar(path)), kind: "debian" };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The rootfs layer for the `apply/rootfs` workload.
 * @param quick use the generated rootfs-like tree (fast, no network)
 */
export async function rootfsTar(
  corpusDir: string,
  quick: boolean,
  likeFiles: number,
  seed: number,
  log: (s: string) => void,
): Promise<RootfsTar> {
  let note = "--quick: a generated rootfs-like tree stands in for the Debian rootfs";
  if (!quick) {
    try {
      return await debianTar(corpusDir, log);
    } catch (err) {
      note = `Debian rootfs unavailable (${(err as Error).message.split("\n")[0]}); a generated rootfs-like tree stands in`;
    }
  }
  log(`corpus: ${note}`);
  const t = await cachedTar(corpusDir, "rootfs-like", { files: likeFiles, seed }, () =>
    rootfsLikeEntries(likeFiles, seed),
  );
  return { ...t, kind: "rootfs-like", note };
}
