/**
 * The layer import pipeline shared by pull and load.
 *
 * Remote layers are fetched in parallel (p-queue). Each blob is verified
 * against its digest (by the source's stream, which fails instead of ending
 * on bad bytes), decompressed and handed to the import transaction as it
 * streams in when its parent is already registered; otherwise the verified
 * blob goes to a spool file as fetched, the fetch slot is freed, and the
 * layer is decompressed and registered in order once the parent is. Local
 * layers (archives, layouts) are opened when their parent is in, never
 * spooled. The layer store checks the config's diffID in the same pass as
 * it stores the tar, so nothing is hashed twice and nothing is stored from
 * bad data. A layer that is stored already is held, not fetched.
 *
 * Memory: every stage streams with backpressure (1 MiB reads, the layer
 * store's apply pulls the tar); a layer waiting for its parent waits on
 * disk (the spool), never in memory; at most `concurrency` downloads run.
 *
 * On failure the other fetches are aborted and the error is thrown once no
 * layer is being registered any more; releasing what was held is the
 * transaction's job ({@link withImport}).
 *
 * @module
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import PQueue from "p-queue";
import { decompress } from "../../archive/compression.js";
import type { ImageLayer } from "../records/image-store.js";
import { chainIDs } from "../spec/digest.js";
import { spoolDirFor } from "./layer-sink.js";
import type { ProgressFn } from "./progress.js";
import type { ImportTransaction } from "./transaction.js";

/** One layer to import. */
export interface LayerSource {
  /** The diffID the image config promises for this layer. */
  diffID: string;
  /** The blob as stored (compressed or not), when it differs from the tar. */
  blob?: ImageLayer["blob"];
  /** Bytes of the blob as stored, for progress (`blob.size` when there is a blob). */
  size?: number;
  /** Short name for progress ("a1b2c3d4e5f6"). */
  label: string;
  /** Opens the blob. The stream must fail (not end) when the bytes do not match the blob's digest. */
  open(signal: AbortSignal): Promise<Readable>;
  /**
   * The blob is on local disk (an archive member, a layout blob): instead of
   * spooling it while its parent is applied, the pipeline opens it when the
   * parent is in.
   */
  local?: boolean;
}

/** Options of {@link importLayers}. */
export interface ImportOptions {
  /** Layers fetched at once. @default 3 */
  concurrency?: number;
  progress?: ProgressFn;
  /** Where spool files go. @default the sink's scratch dir when it has one, else os.tmpdir() */
  spoolDir?: string;
}

/** Bytes between two "downloading" progress events of one layer. */
const PROGRESS_STEP = 1 << 20;

/** Settles when `p` does, never rejecting. */
const settled = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    () => undefined,
  );

/** A pass-through that reports the bytes flowing through it. */
function counted(input: Readable, onBytes: (n: number) => void): Readable {
  const t = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  input.on("error", (err) => t.destroy(err));
  return input.pipe(t);
}

/**
 * Imports the layers of one image, bottom first, into `tx`.
 * @returns one record per layer, in order
 * @throws ERR_DIGEST_MISMATCH when a blob or a tar is not what was promised; whatever a source throws
 */
export async function importLayers(
  tx: ImportTransaction,
  layers: LayerSource[],
  opts: ImportOptions = {},
): Promise<ImageLayer[]> {
  const chains = chainIDs(layers.map((l) => l.diffID));
  const progress = opts.progress ?? (() => {});
  const records: ImageLayer[] = layers.map((l, i) => ({
    diffID: l.diffID,
    chainID: chains[i],
    ...(l.blob ? { blob: l.blob } : {}),
  }));
  const abort = new AbortController();
  const spool = await spoolDirFor(tx.sink, "spool", opts.spoolDir);
  const queue = new PQueue({ concurrency: Math.max(1, opts.concurrency ?? 3) });

  // registered[i] settles when layer i is in the sink; the chain enforces order.
  const done: boolean[] = layers.map(() => false);
  const registered: Array<Promise<void>> = [];
  let firstError: unknown;
  const fail = (err: unknown) => {
    if (firstError === undefined) firstError = err;
    abort.abort(err);
  };

  try {
    for (let i = 0; i < layers.length; i++) {
      const src = layers[i];
      const total = src.size ?? src.blob?.size;
      const parent = i === 0 ? "" : chains[i - 1];
      const stored = await tx.hold(chains[i]);
      if (stored) {
        if (stored.size >= 0) records[i].size = stored.size;
        done[i] = true;
        registered.push(Promise.resolve());
        progress({ layer: i, id: src.label, status: "exists", total });
        continue;
      }
      progress({ layer: i, id: src.label, status: "waiting", total });
      const prev = i === 0 ? Promise.resolve() : registered[i - 1];
      const prevDone = () => i === 0 || done[i - 1];
      let current = 0;
      let reported = -Infinity;
      const onBytes = (n: number) => {
        current += n;
        // One event per MiB (and the last one), not one per network chunk.
        if (current - reported < PROGRESS_STEP && current !== total) return;
        reported = current;
        progress({ layer: i, id: src.label, status: "downloading", current, total });
      };
      /** A verified blob → its tar stream (the layer store checks the diffID as it stores). */
      const tarOf = async (blob: Readable) => {
        const { stream } = await decompress(blob);
        // Errors surface where the tar is consumed; until then (waiting for the parent) they must not go unhandled.
        for (const st of [blob, stream]) st.on("error", () => {});
        return stream;
      };
      const openBlob = async () => {
        abort.signal.throwIfAborted();
        return counted(await src.open(abort.signal), onBytes);
      };
      const toSink = async (input: Readable) => {
        abort.signal.throwIfAborted();
        progress({ layer: i, id: src.label, status: "applying", current, total });
        const res = await tx.register(input, parent, src.diffID);
        if (res.chainID !== chains[i])
          throw new Error(`layer store returned chainID ${res.chainID}, want ${chains[i]}`);
        records[i].size = res.size;
        records[i].tarSize = res.tarSize;
        done[i] = true;
        progress({ layer: i, id: src.label, status: "done", current, total });
      };
      let task: Promise<void>;
      if (src.local) {
        // On local disk: opening late costs nothing, so wait for the parent rather than copy to a spool file.
        task = prev.then(async () => toSink(await tarOf(await openBlob())));
      } else {
        // The queue bounds fetches only: a spooled layer frees its slot once it is on disk, and is
        // registered (outside the queue) when its parent is, as Docker's download manager does.
        // The spool file holds the blob as fetched (verified, still compressed): less to write and
        // read back, and no decompression competing with the parent's apply, as in Docker.
        const fetched = queue.add(async (): Promise<string | undefined> => {
          const blob = await openBlob();
          if (prevDone()) {
            await toSink(await tarOf(blob));
            return undefined;
          }
          progress({ layer: i, id: src.label, status: "spooling", current, total });
          const file = join(spool, String(i));
          await pipeline(blob, createWriteStream(file));
          return file;
        });
        task = Promise.all([prev, fetched]).then(async ([, file]) => {
          if (file === undefined) return;
          await toSink(await tarOf(createReadStream(file, { highWaterMark: 1 << 20 })));
          await rm(file, { force: true });
        });
      }
      // A layer is "registered" only when its parent is too; a failure anywhere below fails it.
      registered.push(
        task.catch((err) => {
          // A failure below this layer was reported there already.
          if (err !== firstError) progress({ layer: i, id: src.label, status: "failed" });
          fail(err);
          throw err;
        }),
      );
    }
  } catch (err) {
    fail(err);
  }
  // Nothing may still be registering when the caller releases what the transaction holds.
  await Promise.all(registered.map(settled));
  queue.clear();
  await queue.onIdle().catch(() => {});
  await rm(spool, { recursive: true, force: true });
  if (firstError !== undefined) throw firstError;
  return records;
}
