/**
 * The layers of a {@link Store}: layer tars applied by hand (`strata layer
 * apply`), listed, exported byte for byte and removed. A layer applied here
 * is held by the named reference {@link USER_REF} until {@link Layers.remove};
 * the layers of images and containers are held by those.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { decompress } from "../archive/compression.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { type Digest, isDigest, type LayerInfo, type LayerStore } from "../layer/index.js";

/** The named reference `layer apply` keeps on what it stores, so it survives until `layer rm`. */
export const USER_REF = "user";

/** A layer as {@link Layers.list} shows it. */
export interface LayerSummary extends LayerInfo {
  /** References holding it: named ones (`ref:image`, `ref:user`), child layers, containers. */
  refs: string[];
}

/** Finds the top layer of an image name or id; undefined when no image matches. */
export type ImageTopResolver = (ref: string) => Promise<Digest | undefined>;

/** The layer operations of a store. Get it from `openStore(...).layers`. */
export class Layers {
  readonly #store: LayerStore;
  readonly #imageTop: ImageTopResolver;

  /** @internal built by `openStore` */
  constructor(store: LayerStore, imageTop: ImageTopResolver) {
    this.#store = store;
    this.#imageTop = imageTop;
  }

  /**
   * Applies a layer tar (uncompressed, gzip, zstd, bzip2 or xz) on `parent`
   * and holds it with {@link USER_REF}.
   * @param tar the layer tar; consumed (or destroyed on failure)
   * @param parent a layer reference (see {@link resolve}); none: a base layer
   * @returns the stored layer (an identical layer already stored is returned as is)
   * @throws ERR_BREAKOUT, ERR_DECOMPRESS, ERR_TAR_* for a hostile or broken tar; ERR_LAYER_NOT_FOUND for the parent
   * @example
   * const info = await store.layers.apply(fs.createReadStream("layer.tar.gz"));
   */
  async apply(tar: Readable, parent?: string): Promise<LayerInfo> {
    const parentID: Digest | "" = parent ? await this.resolve(parent) : "";
    const { stream } = await decompress(tar);
    // The tar flows (and may fail) while the store takes its lock and prepares the layer: the error
    // surfaces where the store consumes the stream; until then it must not go unhandled.
    for (const s of [tar, stream]) s.on("error", () => {});
    return this.#store.register(stream, parentID, { ref: USER_REF }); // held by the named reference alone
  }

  /** Every stored layer, with the references that hold it. */
  async list(): Promise<LayerSummary[]> {
    const out: LayerSummary[] = [];
    for (const l of await this.#store.layers()) out.push({ ...l, refs: await this.#store.referencesOf(l.chainID) });
    return out;
  }

  /**
   * Resolves a layer reference: a full chainID, a unique hex prefix of one
   * (4 digits or more, with or without "sha256:"), or an image name or id
   * (its top layer).
   * @throws ERR_LAYER_NOT_FOUND (NotFoundError); ERR_AMBIGUOUS for a prefix of several layers
   */
  async resolve(ref: string): Promise<Digest> {
    if (isDigest(ref) && (await this.#store.db.readLayer(ref))) return ref;
    const image = await this.#imageTop(ref);
    if (image) return image;
    const hex = ref.replace(/^sha256:/, "");
    if (/^[a-f0-9]{4,64}$/.test(hex)) {
      const hits = (await this.#store.layers()).filter((l) => l.chainID.slice(7).startsWith(hex));
      if (hits.length === 1) return hits[0]!.chainID;
      if (hits.length > 1)
        throw new InvalidArgumentError("ERR_AMBIGUOUS", `Cannot resolve layer: ambiguous prefix "${ref}"`);
    }
    throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot find layer: no layer or image "${ref}"`);
  }

  /**
   * The layer's exact original tar (the bytes it was applied from). The
   * caller consumes or destroys the stream.
   * @throws ERR_LAYER_NOT_FOUND
   */
  async tar(ref: string): Promise<Readable> {
    return this.#store.tarStream(await this.resolve(ref));
  }

  /**
   * Drops the {@link USER_REF} hold of a layer applied with {@link apply};
   * it goes (with parents nothing else holds) when nothing else holds it.
   * @returns the chainIDs deleted
   * @throws ERR_LAYER_IN_USE (FailedPreconditionError) while an image, a child layer or a container uses it
   */
  async remove(ref: string): Promise<Digest[]> {
    const id = await this.resolve(ref);
    const others = (await this.#store.referencesOf(id)).filter((r) => r !== `ref:${USER_REF}`);
    if (others.length > 0) {
      throw new FailedPreconditionError(
        "ERR_LAYER_IN_USE",
        `Cannot remove layer: in use by ${others.join(", ")} "${id}"`,
      );
    }
    return this.#store.removeRef(id, USER_REF);
  }
}
