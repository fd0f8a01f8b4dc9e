/**
 * `strata push IMAGE [TARGET]`: uploads a stored image to a registry as a
 * Docker v2 schema 2 manifest with gzip layers.
 *
 * Per layer: when the image record remembers the compressed blob the layer
 * came from, a HEAD in the target repository skips the upload, and on the
 * same registry a cross-repository mount (`POST …/uploads/?mount=&from=`)
 * avoids it; otherwise the layer tar is read from the layer store (verified
 * against its diffID), gzipped and streamed: one PATCH (monolithic) or
 * `chunkSize` PATCHes with Content-Range, then PUT with the digest computed
 * on the way. The manifest goes last, so a failed push names nothing.
 *
 * @module
 */
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { StrataError } from "../../errors.js";
import { DigestStream, sha256 } from "../spec/digest.js";
import type { ImageLayer, ImageStore } from "../records/image-store.js";
import type { LayerSink } from "../import/layer-sink.js";
import type { ProgressFn } from "../import/progress.js";
import { familiarName, parseReference } from "../spec/reference.js";
import { type Descriptor, type ImageManifest, MT } from "../spec/types.js";
import { type ClientOptions, RegistryClient } from "./client.js";

/** Options of {@link pushImage}. */
export interface PushOptions extends ClientOptions {
  /** Upload in PATCH requests of this many bytes; 0 = one streamed PATCH. @default 0 */
  chunkSize?: number;
  progress?: ProgressFn;
}

/** What a push did. */
export interface PushResult {
  digest: string;
  /** Per layer: "exists", "mounted" or "pushed". */
  layers: Array<"exists" | "mounted" | "pushed">;
}

const GZIP_TYPES = new Set<string>([MT.dockerLayer, MT.ociLayerGzip]);

/** Starts an upload session; with `mount`, may complete at once (201). */
async function startUpload(
  client: RegistryClient,
  repo: string,
  mount?: { digest: string; from: string },
): Promise<{ location?: string; mounted: boolean }> {
  const q = mount ? `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}` : "";
  const scopes = [`repository:${repo}:pull,push`, ...(mount ? [`repository:${mount.from}:pull`] : [])];
  const res = await client.request(`/v2/${repo}/blobs/uploads/${q}`, { method: "POST", scopes });
  await res.body.cancel();
  if (res.status === 201 && mount) return { mounted: true };
  if (res.status !== 202)
    throw new StrataError("ERR_REGISTRY", `Cannot push: upload not started (HTTP ${res.status}) "${repo}"`);
  return { location: absolute(client, res.headers.get("location") ?? ""), mounted: false };
}

function absolute(client: RegistryClient, loc: string): string {
  if (!loc) throw new StrataError("ERR_REGISTRY", "Cannot push: upload without Location");
  return new URL(loc, client.base).toString();
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set("digest", digest);
  return u.toString();
}

/** Uploads a small blob in one POST+PUT unless the repository already has it. */
async function pushSmallBlob(client: RegistryClient, repo: string, bytes: Buffer, digest: string): Promise<void> {
  const scopes = [`repository:${repo}:pull,push`];
  if ((await client.blobSize(repo, digest, scopes)) !== undefined) return;
  const { location } = await startUpload(client, repo);
  const res = await client.request(withDigest(location as string, digest), {
    method: "PUT",
    headers: { "content-type": "application/octet-stream", "content-length": String(bytes.length) },
    body: bytes,
    scopes,
  });
  await res.body.cancel();
  if (res.status !== 201) throw new StrataError("ERR_REGISTRY", `Cannot push the blob: HTTP ${res.status} "${digest}"`);
}

/** Streams `data` into an upload session; returns the final location. */
async function patchAll(
  client: RegistryClient,
  repo: string,
  location: string,
  data: Readable,
  chunkSize: number,
): Promise<string> {
  const scopes = [`repository:${repo}:pull,push`];
  const send = async (loc: string, body: Buffer | ReadableStream<Uint8Array>, range?: string) => {
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (range) headers["content-range"] = range;
    if (Buffer.isBuffer(body)) headers["content-length"] = String(body.length);
    const res = await client.request(loc, { method: "PATCH", headers, body, scopes, once: !Buffer.isBuffer(body) });
    await res.body.cancel();
    if (res.status !== 202) throw new StrataError("ERR_REGISTRY", `Cannot push: PATCH answered HTTP ${res.status}`);
    return absolute(client, res.headers.get("location") ?? loc);
  };
  if (!chunkSize) return send(location, Readable.toWeb(data) as ReadableStream<Uint8Array>);
  let loc = location;
  let offset = 0;
  let pending: Buffer[] = [];
  let have = 0;
  const flush = async () => {
    const chunk = Buffer.concat(pending, have);
    loc = await send(loc, chunk, `${offset}-${offset + chunk.length - 1}`);
    offset += chunk.length;
    pending = [];
    have = 0;
  };
  for await (const c of data) {
    pending.push(c as Buffer);
    have += (c as Buffer).length;
    if (have >= chunkSize) await flush();
  }
  if (have > 0) await flush();
  return loc;
}

async function pushLayer(
  client: RegistryClient,
  sink: LayerSink,
  repo: string,
  l: ImageLayer,
  chunkSize: number,
): Promise<{ desc: Descriptor; how: "exists" | "mounted" | "pushed" }> {
  const scopes = [`repository:${repo}:pull,push`];
  const b = l.blob;
  if (b && GZIP_TYPES.has(b.mediaType)) {
    const desc = { mediaType: MT.dockerLayer, digest: b.digest, size: b.size };
    if ((await client.blobSize(repo, b.digest, scopes)) !== undefined) return { desc, how: "exists" };
    if (b.registry === client.registry && b.repository && b.repository !== repo) {
      const up = await startUpload(client, repo, { digest: b.digest, from: b.repository });
      if (up.mounted) return { desc, how: "mounted" };
    }
  }
  const { location } = await startUpload(client, repo);
  const tar = await sink.tarStream(l.chainID);
  const checkTar = new DigestStream(`layer ${l.diffID}`, { digest: l.diffID });
  const blob = new DigestStream("blob");
  tar.on("error", (e) => checkTar.destroy(e));
  const gz = createGzip({ chunkSize: 1 << 20 });
  checkTar.on("error", (e) => gz.destroy(e));
  gz.on("error", (e) => blob.destroy(e));
  const data = tar.pipe(checkTar).pipe(gz).pipe(blob);
  const last = await patchAll(client, repo, location as string, data, chunkSize);
  const res = await client.request(withDigest(last, blob.digest), {
    method: "PUT",
    headers: { "content-length": "0" },
    scopes,
  });
  await res.body.cancel();
  if (res.status !== 201)
    throw new StrataError("ERR_REGISTRY", `Cannot push the layer: HTTP ${res.status} "${blob.digest}"`);
  return { desc: { mediaType: MT.dockerLayer, digest: blob.digest, size: blob.bytes }, how: "pushed" };
}

/**
 * Pushes the stored image `local` to `target` (default: `local` itself).
 * @throws ERR_IMAGE_NOT_FOUND; ERR_DIGEST_MISMATCH when a stored layer is corrupt; ERR_REGISTRY*
 */
export async function pushImage(
  store: ImageStore,
  sink: LayerSink,
  local: string,
  target: string = local,
  opts: PushOptions = {},
): Promise<PushResult> {
  const rec = await store.resolve(local);
  const t = parseReference(target);
  const client = new RegistryClient(t.registry, opts);
  const repo = t.repository;
  const config = await store.config(rec.id);
  await pushSmallBlob(client, repo, config, rec.id);
  const layers: Descriptor[] = [];
  const how: PushResult["layers"] = [];
  for (const [i, l] of rec.layers.entries()) {
    const id = l.diffID.slice(7, 19);
    opts.progress?.({ layer: i, id, status: "pushing" });
    const r = await pushLayer(client, sink, repo, l, opts.chunkSize ?? 0);
    layers.push(r.desc);
    how.push(r.how);
    opts.progress?.({ layer: i, id, status: r.how === "pushed" ? "done" : r.how });
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MT.dockerManifest,
    config: { mediaType: MT.dockerConfig, digest: rec.id, size: config.length },
    layers,
  };
  const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
  const ref = t.digest ?? t.tag ?? "latest";
  const res = await client.request(`/v2/${repo}/manifests/${ref}`, {
    method: "PUT",
    headers: { "content-type": MT.dockerManifest },
    body: bytes,
    scopes: [`repository:${repo}:pull,push`],
  });
  await res.body.cancel();
  if (res.status !== 201)
    throw new StrataError("ERR_REGISTRY", `Cannot push the manifest: HTTP ${res.status} "${familiarName(t)}"`);
  return { digest: sha256(bytes), layers: how };
}
