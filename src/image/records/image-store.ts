/**
 * The image-record store: image id (the config digest) → config JSON and the
 * chain of layers, plus the tag table. Files under one directory
 * (`<root>/image/<driver>`, beside the layers of the driver they use):
 *
 *   configs/<hex>        the config bytes exactly as received (their sha256 is the id)
 *   images/<hex>.json    the {@link ImageRecord}
 *   repositories.json    { "docker.io/library/debian:12": "sha256:…" }
 *   containers/          which image each container was created from (`containers.ts`)
 *
 * Every write is atomic; a record is written after its config, and the tag
 * table last, so a crash leaves at worst an untagged image.
 *
 * @module
 */
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { FailedPreconditionError, hasCode, InvalidArgumentError, NotFoundError } from "../../errors.js";
import { StoreLock } from "../../layer/lock.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { chainIDs, DigestMismatchError, digestHex, sha256 } from "../spec/digest.js";
import { parseConfig } from "../spec/parse.js";
import { familiarName, parseReference, repoName } from "../spec/reference.js";
import { type ContainerImage, ContainerImages, type ContainerRef } from "./containers.js";

/** Where the image records of the layers of driver `driver` live under a store root. */
export function imageDir(root: string, driver: string): string {
  return join(root, "image", driver);
}

/** One layer of a stored image (the layer store's own record of it is `src/layer`'s LayerRecord). */
export interface ImageLayer {
  diffID: string;
  chainID: string;
  /** Bytes of the uncompressed layer tar (known when strata saw the tar). */
  tarSize?: number;
  /** Σ entry sizes as the layer store reports it. */
  size?: number;
  /** The compressed blob this layer came from, to skip uploads and mount across repositories. */
  blob?: { digest: string; size: number; mediaType: string; registry?: string; repository?: string };
}

/** A stored image. */
export interface ImageRecord {
  id: string;
  layers: ImageLayer[];
  repoTags: string[];
  repoDigests: string[];
  /** When strata stored it (ISO time). */
  stored: string;
}

/** The result of removing a name or an image. */
export interface RemoveResult {
  untagged: string[];
  deleted: string[];
  /** ChainIDs no remaining image uses: the layer store may release them. */
  unusedChainIDs: string[];
}

/** Normalises a user's name to the stored tag key: "debian" → "docker.io/library/debian:latest". */
export function tagKey(name: string): string {
  const r = parseReference(name);
  if (r.digest && !r.tag) throw new InvalidArgumentError("ERR_INVALID_REFERENCE", `Cannot tag by digest "${name}"`);
  return `${repoName(r)}:${r.tag}`;
}

/** Options of {@link ImageStore.remove}. */
export interface RemoveOptions {
  /** Remove an image with several names by id, or one a container uses. */
  force?: boolean;
  /** The layer store's containers: an image one of them was created from is not removed unless forced. */
  containers?: readonly ContainerRef[];
}

/** The image-record store. Changes run under an flock on `<dir>/lock`, so processes can share it. */
export class ImageStore {
  readonly dir: string;
  /** Which image each container was created from. */
  readonly containers: ContainerImages;
  #lock: StoreLock;

  private constructor(dir: string) {
    this.dir = dir;
    this.containers = new ContainerImages(join(dir, "containers"));
    this.#lock = new StoreLock(join(dir, "lock"));
  }

  /** Closes the lock file. */
  close(): Promise<void> {
    return this.#lock.close();
  }

  /** Opens (creating) the store under `dir`. */
  static async open(dir: string): Promise<ImageStore> {
    for (const d of ["configs", "images", "containers"]) await mkdir(join(dir, d), { recursive: true, mode: 0o700 });
    return new ImageStore(dir);
  }

  /** Opens (creating) the image records of driver `driver` under store root `root` ({@link imageDir}). */
  static openFor(root: string, driver: string): Promise<ImageStore> {
    return ImageStore.open(imageDir(root, driver));
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.with(fn);
  }

  /** A JSON file of the store; undefined when it does not exist. @throws ERR_BAD_IMAGE_RECORD when it is not JSON */
  async #readJson<T>(path: string): Promise<T | undefined> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if (hasCode(err, "ENOENT")) return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new InvalidArgumentError("ERR_BAD_IMAGE_RECORD", `Cannot read the image records: not JSON "${path}"`);
    }
  }

  async #tags(): Promise<Record<string, string>> {
    return (await this.#readJson<Record<string, string>>(join(this.dir, "repositories.json"))) ?? {};
  }

  #readRecord(id: string): Promise<ImageRecord | undefined> {
    return this.#readJson<ImageRecord>(join(this.dir, "images", `${digestHex(id)}.json`));
  }

  /**
   * Stores an image whose layers are already in the layer store, then points
   * `tags` at it (moving them from any other image).
   * @throws ERR_DIGEST_MISMATCH when the layers' diffIDs differ from the config's
   */
  put(config: Buffer, layers: ImageLayer[], tags: string[] = [], repoDigest?: string): Promise<ImageRecord> {
    return this.#serial(async () => {
      const id = sha256(config);
      const diffIDs = parseConfig(config).rootfs.diff_ids;
      const chains = chainIDs(diffIDs);
      if (diffIDs.length !== layers.length) {
        throw DigestMismatchError.of("the image layers", `${diffIDs.length} layers`, `${layers.length}`);
      }
      layers.forEach((l, i) => {
        if (l.diffID !== diffIDs[i]) throw DigestMismatchError.of(`layer ${i}`, diffIDs[i], l.diffID);
        if (l.chainID !== chains[i]) throw DigestMismatchError.of(`layer ${i} chain`, chains[i], l.chainID);
      });
      const old = await this.#readRecord(id);
      const keys = tags.map(tagKey);
      const rec: ImageRecord = {
        id,
        layers: layers.map((l, i) => ({ ...old?.layers[i], ...l })),
        repoTags: old?.repoTags ?? [],
        repoDigests: [...new Set([...(old?.repoDigests ?? []), ...(repoDigest ? [repoDigest] : [])])],
        stored: old?.stored ?? new Date().toISOString(),
      };
      await writeFileAtomic(join(this.dir, "configs", digestHex(id)), config);
      await this.#writeRecord(rec);
      await this.#setTags(keys, id);
      return (await this.#readRecord(id)) as ImageRecord;
    });
  }

  async #writeRecord(rec: ImageRecord): Promise<void> {
    await writeFileAtomic(join(this.dir, "images", `${digestHex(rec.id)}.json`), `${JSON.stringify(rec, null, 1)}\n`);
  }

  /** Points each tag key at `id`, updating the repoTags of the images involved. */
  async #setTags(keys: string[], id: string): Promise<void> {
    if (keys.length === 0) return;
    const tags = await this.#tags();
    const touched = new Set<string>([id]);
    for (const k of keys) {
      if (tags[k] && tags[k] !== id) touched.add(tags[k]);
      tags[k] = id;
    }
    await this.#writeTags(tags);
    for (const t of touched) await this.#syncRepoTags(t, tags);
  }

  async #syncRepoTags(id: string, tags: Record<string, string>): Promise<void> {
    const rec = await this.#readRecord(id);
    if (!rec) return;
    rec.repoTags = Object.keys(tags)
      .filter((k) => tags[k] === id)
      .sort();
    await this.#writeRecord(rec);
  }

  /**
   * Resolves a name ("debian:12"), a full id, or an id prefix of at least 4 hex digits.
   * @throws ERR_IMAGE_NOT_FOUND; ERR_AMBIGUOUS_ID for a prefix of several images
   */
  async resolve(ref: string): Promise<ImageRecord> {
    const notFound = () => new NotFoundError("ERR_IMAGE_NOT_FOUND", `Cannot find the image: no such image "${ref}"`);
    const hex = ref.replace(/^sha256:/, "");
    if (/^[a-f0-9]{4,64}$/.test(hex)) {
      const ids = (await this.ids()).filter((id) => id.slice(7).startsWith(hex));
      if (ids.length > 1)
        throw new InvalidArgumentError("ERR_AMBIGUOUS_ID", `Cannot resolve the image: ambiguous id "${ref}"`);
      if (ids.length === 1) return (await this.#readRecord(ids[0])) as ImageRecord;
    }
    let key: string;
    try {
      const r = parseReference(ref);
      if (r.digest) {
        const want = `${repoName(r)}@${r.digest}`;
        for (const id of await this.ids()) {
          const rec = await this.#readRecord(id);
          if (rec?.repoDigests.includes(want)) return rec;
        }
        throw notFound();
      }
      key = `${repoName(r)}:${r.tag}`;
    } catch (err) {
      if (hasCode(err, "ERR_INVALID_REFERENCE")) throw notFound();
      throw err;
    }
    const id = (await this.#tags())[key];
    const rec = id ? await this.#readRecord(id) : undefined;
    if (!rec) throw notFound();
    return rec;
  }

  /** Every image id, sorted. */
  async ids(): Promise<string[]> {
    const names = await readdir(join(this.dir, "images"));
    return names
      .filter((n) => /^[a-f0-9]{64}\.json$/.test(n))
      .map((n) => `sha256:${n.slice(0, 64)}`)
      .sort();
  }

  /** Every image record. */
  async list(): Promise<ImageRecord[]> {
    const out: ImageRecord[] = [];
    for (const id of await this.ids()) {
      const rec = await this.#readRecord(id);
      if (rec) out.push(rec);
    }
    return out;
  }

  /** The config bytes of an image, exactly as stored. */
  async config(id: string): Promise<Buffer> {
    const bytes = await readFile(join(this.dir, "configs", digestHex(id)));
    const got = sha256(bytes);
    if (got !== id) throw DigestMismatchError.of("the stored image config", id, got);
    return bytes;
  }

  /** `strata tag SOURCE TARGET`. */
  async tag(source: string, target: string): Promise<void> {
    const rec = await this.resolve(source);
    await this.#serial(() => this.#setTags([tagKey(target)], rec.id));
  }

  /**
   * `strata rmi`: a name that is one of several tags only loses the tag;
   * otherwise the image record goes. Refused (ERR_IMAGE_IN_USE) without
   * `force` while other tags point at it (removing by id) or while one of
   * `containers` was created from it; forced, the record goes and the
   * containers keep their layers (the layer store holds them for the
   * containers, and {@link containerImage} still has their config).
   * @throws ERR_IMAGE_NOT_FOUND, ERR_IMAGE_IN_USE
   */
  async remove(ref: string, opts: RemoveOptions = {}): Promise<RemoveResult> {
    const rec = await this.resolve(ref);
    return this.#serial(async () => {
      const tags = await this.#tags();
      const res: RemoveResult = { untagged: [], deleted: [], unusedChainIDs: [] };
      const byName = tagKeyOf(ref);
      const named = byName !== undefined && tags[byName] === rec.id;
      if (named && rec.repoTags.length > 1) {
        delete tags[byName];
        await this.#writeTags(tags);
        await this.#syncRepoTags(rec.id, tags);
        res.untagged.push(familiarName(parseReference(byName)));
        return res;
      }
      if (!opts.force) {
        if (!named && rec.repoTags.length > 1) {
          throw new FailedPreconditionError(
            "ERR_IMAGE_IN_USE",
            `Cannot remove the image: it is referenced by several names "${rec.repoTags.join(", ")}"`,
          );
        }
        const users = await this.#users(rec, opts.containers ?? []);
        if (users.length > 0) {
          throw new FailedPreconditionError(
            "ERR_IMAGE_IN_USE",
            `Cannot remove the image: container ${users.map((u) => `"${u}"`).join(", ")} uses it "${ref}"`,
          );
        }
      }
      for (const k of rec.repoTags) {
        delete tags[k];
        res.untagged.push(familiarName(parseReference(k)));
      }
      await this.#writeTags(tags);
      await rm(join(this.dir, "images", `${digestHex(rec.id)}.json`), { force: true });
      await rm(join(this.dir, "configs", digestHex(rec.id)), { force: true });
      res.deleted.push(rec.id);
      const used = new Set((await this.list()).flatMap((r) => r.layers.map((l) => l.chainID)));
      res.unusedChainIDs = rec.layers.map((l) => l.chainID).filter((c) => !used.has(c));
      return res;
    });
  }

  async #writeTags(tags: Record<string, string>): Promise<void> {
    await writeFileAtomic(join(this.dir, "repositories.json"), `${JSON.stringify(tags, null, 1)}\n`);
  }

  /**
   * The containers created from `rec`: those bound to it, and those without
   * a binding (created by layer id, or before bindings) on its top layer.
   */
  async #users(rec: ImageRecord, containers: readonly ContainerRef[]): Promise<string[]> {
    const bound = await this.containers.users(rec.id, containers);
    const top = rec.layers.at(-1)?.chainID;
    const unbound: string[] = [];
    for (const c of containers) {
      if (bound.includes(c.name) || !top || c.parent !== top) continue;
      if (!(await this.containers.of(c))) unbound.push(c.name);
    }
    return [...bound, ...unbound].sort();
  }

  /**
   * Remembers that container `c` was created from image `ref` (its config
   * too), when `ref` names a stored image whose top layer is the container's
   * image layer.
   * @returns whether `ref` was such an image
   */
  async bindContainer(c: ContainerRef, ref: string): Promise<boolean> {
    const rec = await this.resolve(ref).catch((err: unknown) => {
      if (hasCode(err, "ERR_IMAGE_NOT_FOUND")) return undefined;
      throw err;
    });
    if (!rec || (rec.layers.at(-1)?.chainID ?? "") !== c.parent) return false;
    await this.containers.bind(c, rec.id, await this.config(rec.id));
    return true;
  }

  /** The top layer's chainID of image `ref`, or undefined when no image matches ("" for an image without layers). */
  async topLayer(ref: string): Promise<string | undefined> {
    const rec = await this.resolve(ref).catch((err: unknown) => {
      if (hasCode(err, "ERR_IMAGE_NOT_FOUND", "ERR_AMBIGUOUS_ID")) return undefined;
      throw err;
    });
    return rec ? (rec.layers.at(-1)?.chainID ?? "") : undefined;
  }

  /**
   * The image container `c` was created from, with its config: the one it
   * was bound to at creation (kept even when the image was removed since),
   * else an image whose top layer is the container's image layer.
   */
  async containerImage(c: ContainerRef): Promise<ContainerImage | undefined> {
    const bound = await this.containers.of(c);
    if (bound) return bound;
    if (!c.parent) return undefined;
    for (const img of await this.list()) {
      if (img.layers.at(-1)?.chainID === c.parent)
        return { image: img.id, config: parseConfig(await this.config(img.id)) };
    }
    return undefined;
  }
}

/**
 * Runs `fn` with the image records of driver `driver` under store root
 * `root` open, closing them afterwards whatever happens.
 */
export async function withImageStore<T>(root: string, driver: string, fn: (s: ImageStore) => Promise<T>): Promise<T> {
  const images = await ImageStore.openFor(root, driver);
  try {
    return await fn(images);
  } finally {
    await images.close();
  }
}

/** The tag key of `ref`, or undefined when `ref` is not a name (an id). */
export function tagKeyOf(ref: string): string | undefined {
  try {
    return tagKey(ref);
  } catch {
    return undefined;
  }
}
