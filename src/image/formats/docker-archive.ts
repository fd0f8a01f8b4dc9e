/**
 * docker-archive: what `docker save` writes and `docker load` reads.
 * `manifest.json` lists each image's config file, repo tags and layer tars;
 * the config's rootfs.diff_ids are the sha256 of those tars. Docker 25+
 * writes the same manifest.json inside an OCI layout (layers and config
 * under blobs/sha256/), which this reader handles the same way.
 *
 * @module
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { tarStream, type TarOutputEntry } from "../../archive/tar-writer.js";
import { InvalidArgumentError } from "../../errors.js";
import { type LayerSink, spoolDirFor } from "../import/layer-sink.js";
import type { LayerSource } from "../import/pipeline.js";
import { type ImageRecord, type ImageStore, tagKeyOf } from "../records/image-store.js";
import { DigestStream, digestHex } from "../spec/digest.js";
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES } from "../spec/limits.js";
import { parseConfig, parseJson } from "../spec/parse.js";
import { familiarName, parseReference } from "../spec/reference.js";
import { type FileSource, openVerified, readVerified } from "./source.js";
import { header } from "./tar-entry.js";

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

/** Checks one manifest.json entry's shape. */
function checkEntry(src: FileSource, e: unknown): ManifestEntry {
  const m = e as Partial<ManifestEntry> | null;
  if (typeof m !== "object" || m === null || typeof m.Config !== "string" || !Array.isArray(m.Layers))
    throw bad(src, "manifest.json entry without Config/Layers");
  if (!m.Layers.every((l) => typeof l === "string")) throw bad(src, "manifest.json layer names are not strings");
  const tags = m.RepoTags ?? [];
  if (!Array.isArray(tags)) throw bad(src, "manifest.json RepoTags is not a list");
  for (const t of tags) {
    if (typeof t !== "string" || tagKeyOf(t) === undefined)
      throw bad(src, `invalid repo tag "${String(t)}" in manifest.json`);
  }
  return { Config: m.Config, RepoTags: tags, Layers: m.Layers };
}

/**
 * Reads the images of a docker-archive. Reads whole only what is capped:
 * manifest.json (4 MiB) and configs (8 MiB).
 * @throws ERR_BAD_ARCHIVE for a malformed manifest; ERR_BAD_CONFIG; ERR_DIGEST_MISMATCH for a config that is not its name
 */
export async function readDockerArchive(src: FileSource): Promise<ArchiveImage[]> {
  const entries = parseJson(await src.read("manifest.json", MAX_MANIFEST_BYTES), "manifest.json", "ERR_BAD_ARCHIVE");
  if (!Array.isArray(entries) || entries.length === 0) throw bad(src, "manifest.json lists no images");
  const out: ArchiveImage[] = [];
  for (const raw of entries) {
    const e = checkEntry(src, raw);
    const cfgHex = /([a-f0-9]{64})(\.json)?$/.exec(e.Config)?.[1];
    const config = cfgHex
      ? await readVerified(src, e.Config, `sha256:${cfgHex}`, MAX_CONFIG_BYTES)
      : await src.read(e.Config, MAX_CONFIG_BYTES);
    const diffIDs = parseConfig(config).rootfs.diff_ids;
    if (diffIDs.length !== e.Layers.length)
      throw bad(src, `${e.Config} has ${diffIDs.length} diff_ids for ${e.Layers.length} layers`);
    const layers: LayerSource[] = [];
    for (const [i, name] of e.Layers.entries()) {
      const blobHex = BLOB_RE.exec(name)?.[1];
      // An uncompressed blob is its diffID, which the layer store verifies as it applies: hash once.
      const verify = blobHex !== undefined && `sha256:${blobHex}` !== diffIDs[i];
      layers.push({
        diffID: diffIDs[i],
        label: diffIDs[i].slice(7, 19),
        size: await src.size(name),
        local: true,
        open: async () => (verify ? openVerified(src, name, `sha256:${blobHex}`) : src.open(name)),
      });
    }
    out.push({ config, tags: e.RepoTags ?? [], layers });
  }
  return out;
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

/** The entries of a docker-archive of `refs`, layers first, manifest.json last (as `docker save`). */
async function archiveEntries(
  store: ImageStore,
  sink: LayerSink,
  refs: string[],
  spool: string,
): Promise<AsyncIterable<TarOutputEntry>> {
  const images = await Promise.all(refs.map((r) => store.resolve(r)));
  const manifest: ManifestEntry[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const configs: TarOutputEntry[] = [];
  const seen = new Set<string>();
  const layers: Array<{ name: string; size: number; body: () => Promise<Readable> }> = [];
  for (const [n, rec] of images.entries()) {
    const config = await store.config(rec.id);
    const cfgName = `${digestHex(rec.id)}.json`;
    const byTag = tagKeyOf(refs[n]);
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
      configs.push({ header: header(cfgName, config.length), body: config });
    }
    for (const [i, name] of layerNames.entries()) {
      if (seen.has(name)) continue;
      seen.add(name);
      layers.push({ name, ...(await layerBody(sink, rec, i, spool)) });
    }
  }
  return (async function* () {
    for (const d of layers) {
      yield { header: header(`${d.name.split("/")[0]}/`, 0, "dir") };
      yield { header: header(d.name, d.size), body: await d.body() };
    }
    yield* configs;
    const m = Buffer.from(JSON.stringify(manifest));
    yield { header: header("manifest.json", m.length), body: m };
    const r = Buffer.from(`${JSON.stringify(repositories)}\n`);
    yield { header: header("repositories", r.length), body: r };
  })();
}

/**
 * Writes the named images as a docker-archive `docker load` accepts:
 * `<diffID hex>/layer.tar`, `<config hex>.json`, `manifest.json`, `repositories`.
 * To a file, it appears whole or not at all (temp name, then rename); to a
 * stream (stdout, for `strata save IMAGE | docker load`), the stream is
 * written and ended.
 * @throws ERR_IMAGE_NOT_FOUND; ERR_DIGEST_MISMATCH when a stored layer is not its diffID
 * @example
 * await saveDockerArchive(images, sink, ["debian:12"], process.stdout);
 */
export async function saveDockerArchive(
  store: ImageStore,
  sink: LayerSink,
  refs: string[],
  out: string | Writable,
): Promise<void> {
  const spool = await spoolDirFor(sink, "save");
  const tmp = typeof out === "string" ? `${out}.tmp-${process.pid}` : undefined;
  try {
    const entries = await archiveEntries(store, sink, refs, spool);
    if (typeof out !== "string") {
      await pipeline(tarStream(entries), out);
      return;
    }
    await pipeline(tarStream(entries), createWriteStream(tmp!));
    await rename(tmp!, out);
  } finally {
    if (tmp) await rm(tmp, { force: true });
    await rm(spool, { recursive: true, force: true });
  }
}
