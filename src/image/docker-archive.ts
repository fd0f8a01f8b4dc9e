/**
 * docker-archive: what `docker save` writes and `docker load` reads.
 * `manifest.json` lists each image's config file, repo tags and layer tars;
 * the config's rootfs.diff_ids are the sha256 of those tars. Docker 25+
 * writes the same manifest.json inside an OCI layout (layers and config
 * under blobs/sha256/), which this reader handles the same way.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { tarStream, type TarOutputEntry } from "../archive/tar-writer.js";
import { InvalidArgumentError } from "../errors.js";
import { header } from "./tar-entry.js";
import { assertDigest, DigestMismatchError, DigestStream, digestHex, sha256 } from "./digest.js";
import { type ImageRecord, type ImageStore, parseConfig, tagKey } from "./image-store.js";
import { type LayerSink, spoolDirFor } from "./layer-sink.js";
import type { LayerSource } from "./pipeline.js";
import { type FileSource, openVerified } from "./source.js";
import { familiarName, parseReference } from "./reference.js";

/** One image found in an archive, ready for the import pipeline. */
export interface ArchiveImage {
  config: Buffer;
  tags: string[];
  layers: LayerSource[];
}

interface ManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

const BLOB_RE = /^blobs\/sha256\/([a-f0-9]{64})$/;
const bad = (src: FileSource, why: string) =>
  new InvalidArgumentError("ERR_BAD_ARCHIVE", `Cannot load the docker-archive: ${why} "${src.path}"`);

/** Whether `src` looks like a docker-archive (has manifest.json). */
export function isDockerArchive(src: FileSource): Promise<boolean> {
  return src.has("manifest.json");
}

/**
 * Reads the images of a docker-archive.
 * @throws ERR_BAD_ARCHIVE for a malformed manifest; ERR_DIGEST_MISMATCH for a config that is not its name
 */
export async function readDockerArchive(src: FileSource): Promise<ArchiveImage[]> {
  let entries: ManifestEntry[];
  try {
    entries = JSON.parse((await src.read("manifest.json")).toString("utf8")) as ManifestEntry[];
  } catch (err) {
    if (err instanceof SyntaxError) throw bad(src, `manifest.json is not JSON (${err.message})`);
    throw err;
  }
  if (!Array.isArray(entries) || entries.length === 0) throw bad(src, "manifest.json lists no images");
  const out: ArchiveImage[] = [];
  for (const e of entries) {
    if (typeof e?.Config !== "string" || !Array.isArray(e.Layers))
      throw bad(src, "manifest.json entry without Config/Layers");
    const cfgHex = /([a-f0-9]{64})(\.json)?$/.exec(e.Config)?.[1];
    const config = cfgHex ? await readVerifiedSmall(src, e.Config, `sha256:${cfgHex}`) : await src.read(e.Config);
    const diffIDs = parseConfig(config).rootfs.diff_ids;
    if (diffIDs.length !== e.Layers.length)
      throw bad(src, `${e.Config} has ${diffIDs.length} diff_ids for ${e.Layers.length} layers`);
    diffIDs.forEach((d) => assertDigest(d, "a diff_id"));
    const layers: LayerSource[] = e.Layers.map((name, i) => {
      const blobHex = BLOB_RE.exec(name)?.[1];
      return {
        diffID: diffIDs[i],
        label: diffIDs[i].slice(7, 19),
        local: true,
        open: async (_signal, onBytes) => {
          // An uncompressed blob is its diffID, which the layer store verifies as it applies: hash once.
          const verify = blobHex && `sha256:${blobHex}` !== diffIDs[i];
          const s = verify ? await openVerified(src, name, `sha256:${blobHex}`) : await src.open(name);
          s.on("data", (c: Buffer) => onBytes(c.length));
          return s;
        },
      };
    });
    out.push({ config, tags: e.RepoTags ?? [], layers });
  }
  return out;
}

async function readVerifiedSmall(src: FileSource, name: string, digest: string): Promise<Buffer> {
  const b = await src.read(name);
  const got = sha256(b);
  if (got !== digest) throw DigestMismatchError.of(`config "${name}"`, digest, got);
  return b;
}

/** A layer tar of a stored image with its exact size, spooling when the size is unknown. */
async function layerBody(
  sink: LayerSink,
  rec: ImageRecord,
  i: number,
  spool: string,
): Promise<{ size: number; body: () => Promise<Readable> }> {
  const l = rec.layers[i];
  const verified = async (s: Readable, size?: number) => {
    const check = new DigestStream(`layer ${l.diffID}`, { digest: l.diffID, ...(size !== undefined ? { size } : {}) });
    s.on("error", (e) => check.destroy(e));
    return s.pipe(check);
  };
  if (l.tarSize !== undefined)
    return { size: l.tarSize, body: async () => verified(await sink.tarStream(l.chainID), l.tarSize) };
  const file = join(spool, digestHex(l.diffID));
  await pipeline(await verified(await sink.tarStream(l.chainID)), createWriteStream(file));
  const { size } = await stat(file);
  return { size, body: async () => createReadStream(file, { highWaterMark: 1 << 20 }) };
}

/**
 * Writes the named images as a docker-archive `docker load` accepts:
 * `<diffID hex>/layer.tar`, `<config hex>.json`, `manifest.json`, `repositories`.
 * The file appears whole or not at all (temp name, then rename).
 */
export async function saveDockerArchive(
  store: ImageStore,
  sink: LayerSink,
  refs: string[],
  outFile: string,
): Promise<void> {
  const images = await Promise.all(refs.map((r) => store.resolve(r)));
  const spool = await spoolDirFor(sink, "save");
  const tmp = `${outFile}.tmp-${process.pid}`;
  try {
    const manifest: ManifestEntry[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    const entries: TarOutputEntry[] = [];
    const seen = new Set<string>();
    const deferred: Array<{ name: string; size: number; body: () => Promise<Readable> }> = [];
    for (const [n, rec] of images.entries()) {
      const config = await store.config(rec.id);
      const cfgName = `${digestHex(rec.id)}.json`;
      const byTag = safeTagKey(refs[n]);
      const keys = byTag && rec.repoTags.includes(byTag) ? [byTag] : rec.repoTags;
      const tags = keys.map((k) => familiarName(parseReference(k)));
      const layerNames = rec.layers.map((l) => `${digestHex(l.diffID)}/layer.tar`);
      manifest.push({ Config: cfgName, RepoTags: tags, Layers: layerNames });
      for (const t of tags) {
        const r = parseReference(t);
        const repo = familiarName({ ...r, tag: undefined, digest: undefined });
        (repositories[repo] ??= {})[r.tag ?? "latest"] = digestHex(rec.layers.at(-1)?.diffID ?? rec.id);
      }
      if (!seen.has(cfgName)) {
        seen.add(cfgName);
        entries.push({ header: header(cfgName, config.length), body: config });
      }
      for (const [i, name] of layerNames.entries()) {
        if (seen.has(name)) continue;
        seen.add(name);
        const { size, body } = await layerBody(sink, rec, i, spool);
        deferred.push({ name, size, body });
      }
    }
    async function* all(): AsyncGenerator<TarOutputEntry> {
      for (const d of deferred) {
        yield { header: header(`${d.name.split("/")[0]}/`, 0, "dir") };
        yield { header: header(d.name, d.size), body: await d.body() };
      }
      yield* entries;
      const m = Buffer.from(JSON.stringify(manifest));
      yield { header: header("manifest.json", m.length), body: m };
      const r = Buffer.from(`${JSON.stringify(repositories)}\n`);
      yield { header: header("repositories", r.length), body: r };
    }
    await pipeline(tarStream(all()), createWriteStream(tmp));
    await rename(tmp, outFile);
  } finally {
    await rm(tmp, { force: true });
    await rm(spool, { recursive: true, force: true });
  }
}

function safeTagKey(ref: string): string | undefined {
  try {
    return tagKey(ref);
  } catch {
    return undefined;
  }
}
