/**
 * Pristine export: a layer's exact original tar, re-assembled from its
 * tar-split index (the raw header bytes) and the files in its tree, and
 * verified against its diffID at the end. For drivers that put the init
 * content inside image layers (devmapper), the files init replaced are read
 * from the originals saved at register time.
 *
 * @module
 */
import { Readable } from "node:stream";
import { cleanEntryPath } from "../archive/paths.js";
import { assembleTar, openInLayer } from "../archive/tar-split.js";
import { FailedPreconditionError } from "../errors.js";
import { listInitOriginals, readInitOriginal } from "./init-layer.js";
import type { LayerRecord } from "./layerdb.js";
import type { StoreParts } from "./recovery.js";

/**
 * The tar of `rec`; the layer stays mounted until the stream is read to
 * its end or destroyed.
 * @throws ERR_NO_PRISTINE when the layer was stored without an index
 */
export async function pristineTar({ db, mounts }: StoreParts, rec: LayerRecord): Promise<Readable> {
  const index = await db.readTarSplit(rec.chainID);
  if (!index) {
    throw new FailedPreconditionError(
      "ERR_NO_PRISTINE",
      `Cannot export layer: no pristine index stored for "${rec.chainID}"`,
    );
  }
  const path = await mounts.acquire(rec.cacheID);
  let files: Awaited<ReturnType<typeof openInLayer>>;
  try {
    files = await openInLayer(path);
  } catch (err) {
    await mounts.release(rec.cacheID);
    throw err;
  }
  const originals = db.initOriginalsRel(rec.cacheID);
  const saved = new Set(await listInitOriginals(db.files, originals));
  const open: typeof files.open = (name, size) =>
    saved.has(cleanEntryPath(name))
      ? readInitOriginal(db.files, originals, cleanEntryPath(name))
      : files.open(name, size);
  const assembled = assembleTar(index, open, { digest: rec.diffID });
  const release = async () => {
    await files.close();
    await mounts.release(rec.cacheID);
  };
  async function* held(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of assembled) yield chunk as Buffer;
    } finally {
      assembled.destroy();
      await release();
    }
  }
  return Readable.from(held(), { objectMode: false });
}
