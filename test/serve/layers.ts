/**
 * Comparing what two dockerds produced: the top layer of a `docker save`,
 * as a sorted list of entries without times (the same change made at two
 * moments differs only in mtimes), the leftovers check of a served root and
 * dockerd's persisted mount counts.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { readTar } from "../helpers/tar-reader.js";
import { mountsUnder } from "../../src/util/mountinfo.js";
import { metadataFile, thinLs } from "../devmapper/helpers.js";

const run = promisify(execFile);

/**
 * One tar entry without its times; hardlinks read as the file they link to.
 * A whiteout's mode is left out: Docker's naive diff writes them with mode 0
 * (vfs, devicemapper), its overlay2 with 0600.
 */
export interface EntryFacts {
  name: string;
  kind: string;
  mode: string;
  owner: string;
  content: string;
}

/** The entries of a layer tar, sorted by name. */
export async function layerFacts(file: string): Promise<EntryFacts[]> {
  const out: EntryFacts[] = [];
  const hashes = new Map<string, string>();
  const links: Array<{ e: EntryFacts; target: string }> = [];
  for await (const e of readTar(createReadStream(file))) {
    const h = e.header;
    const name = h.name.replace(/^\.\//, "").replace(/\/$/, "");
    const facts: EntryFacts = {
      name,
      kind: h.type === "link" ? "file" : h.type,
      mode: name.split("/").pop()!.startsWith(".wh.") ? "whiteout" : h.mode.toString(8),
      owner: `${h.uid}:${h.gid}`,
      content: h.type === "symlink" ? h.linkname : "",
    };
    if (h.type === "file") {
      facts.content = createHash("sha256")
        .update(await e.readAll())
        .digest("hex");
      hashes.set(name, facts.content);
    } else {
      await e.skip();
      if (h.type === "link") links.push({ e: facts, target: h.linkname.replace(/^\.\//, "") });
    }
    out.push(facts);
  }
  for (const { e, target } of links) e.content = hashes.get(target) ?? `link to missing ${target}`;
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Extracts `docker save` output (written to `archive`) into `dir`; returns the layer tar paths, bottom first. */
export async function savedLayerFiles(archive: string, dir: string): Promise<string[]> {
  await run("tar", ["-x", "-f", archive, "-C", dir]);
  const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as Array<{ Layers: string[] }>;
  return m[0]!.Layers.map((l) => join(dir, l));
}

/**
 * What a served root still holds once dockerd removed everything and serve
 * stopped: driver layers (and devmapper's thin devices but the base), mount
 * holds, pending records, mounts, loop devices over its files (empty lists
 * when nothing is left).
 */
export async function leftovers(root: string, driver: string): Promise<Record<string, string[]>> {
  const ls = (d: string) => readdir(d).catch(() => [] as string[]);
  const layers =
    driver === "vfs"
      ? await ls(join(root, "vfs", "dir"))
      : driver === "overlay"
        ? (await ls(join(root, "overlay"))).filter((n) => n !== "l")
        : (await ls(join(root, "devmapper", "metadata"))).filter(
            (n) => !["base", "deviceset-metadata", "transaction-metadata"].includes(n),
          );
  const loops = (await run("losetup", ["-a"])).stdout
    .split("\n")
    .filter((l) => l.includes(root))
    .map((l) => l.split(":")[0]!);
  // devmapper: thin devices in the pool's own metadata, besides the base device.
  let thinDevices: string[] = [];
  if (driver === "devmapper") {
    const base = JSON.parse(await readFile(join(root, "devmapper", "metadata", "base"), "utf8")) as {
      device_id: number;
    };
    thinDevices = (await thinLs(metadataFile(root))).filter((id) => id !== base.device_id).map(String);
  }
  return {
    layers,
    thinDevices,
    overlayLinks: driver === "overlay" ? await ls(join(root, "overlay", "l")) : [],
    holds: (await ls(join(root, "layerdb", driver, "holds"))).filter((n) => n.endsWith(".json")),
    pending: await ls(join(root, "serve", driver, "docker", "pending")),
    mounts: await mountsUnder(root),
    loops,
  };
}

/**
 * dockerd's mount counts as the served root persists them: layer id → the
 * count of the hold named "docker" (`Get`s not yet `Put`), read from the hold
 * records, for layers that have one.
 */
export async function dockerHolds(root: string, driver: string): Promise<Record<string, number>> {
  const dir = join(root, "layerdb", driver, "holds");
  const out: Record<string, number> = {};
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!f.endsWith(".json") || f.startsWith(".")) continue;
    const rec = JSON.parse(await readFile(join(dir, f), "utf8")) as {
      holders: Array<{ kind: string; name?: string; n: number }>;
    };
    const n = rec.holders.find((h) => h.kind === "named" && h.name === "docker")?.n ?? 0;
    if (n > 0) out[f.slice(0, -5)] = n;
  }
  return out;
}
