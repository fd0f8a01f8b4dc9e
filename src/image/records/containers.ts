/**
 * Which image each container was created from, kept by the image records:
 * `containers/<name>.json` holds the container's name and mount id, the
 * image id and the image's config as it was then. Two things need it:
 *
 * - `rmi` refuses to remove an image a container uses unless forced
 *   (Docker's rule); forced, the record goes but the container keeps its
 *   layers (the layer store holds them for the container);
 * - `commit` builds the new config from the container's image config (Cmd,
 *   Env, history), which is still here after a forced `rmi`.
 *
 * A binding counts only while the layer store has a container of that name
 * and mount id, so a binding left by a removed container is ignored (and
 * replaced when the name is used again). The binding is written after the
 * container is created: a crash in between leaves a container without one,
 * which `rmi` and `commit` then match by its image layer, as before
 * bindings existed. Each file is written atomically; no lock is needed.
 *
 * @module
 */
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { hasCode } from "../../errors.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { parseConfig } from "../spec/parse.js";
import type { ImageConfig } from "../spec/types.js";

/** The parts of a layer-store container record a binding is checked against. */
export interface ContainerRef {
  name: string;
  mountID: string;
  /** The chainID of the container's image layer ("" for none). */
  parent: string;
}

/** A container's image: its id and its config as it was when the container was created. */
export interface ContainerImage {
  image: string;
  config: ImageConfig;
}

interface Binding {
  name: string;
  mountID: string;
  image: string;
  /** The image config's bytes as stored (UTF-8 JSON text). */
  config: string;
}

/** The container → image bindings under one image-record directory. */
export class ContainerImages {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  #file(name: string): string {
    return join(this.dir, `${encodeURIComponent(name)}.json`);
  }

  async #read(name: string): Promise<Binding | undefined> {
    try {
      const b = JSON.parse(await readFile(this.#file(name), "utf8")) as Binding;
      return typeof b?.image === "string" && typeof b.mountID === "string" && typeof b.config === "string"
        ? b
        : undefined;
    } catch (err) {
      if (hasCode(err, "ENOENT") || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  /** Records that container `c` was created from image `image` whose config bytes are `config`. */
  async bind(c: ContainerRef, image: string, config: Buffer): Promise<void> {
    const b: Binding = { name: c.name, mountID: c.mountID, image, config: config.toString("utf8") };
    await writeFileAtomic(this.#file(c.name), `${JSON.stringify(b)}\n`);
  }

  /** The image container `c` was created from, when it was bound (and is the same container). */
  async of(c: ContainerRef): Promise<ContainerImage | undefined> {
    const b = await this.#read(c.name);
    if (!b || b.mountID !== c.mountID) return undefined;
    return { image: b.image, config: parseConfig(Buffer.from(b.config, "utf8")) };
  }

  /** The names of the containers of `live` bound to `image`. */
  async users(image: string, live: readonly ContainerRef[]): Promise<string[]> {
    const out: string[] = [];
    for (const c of live) {
      const b = await this.#read(c.name);
      if (b?.mountID === c.mountID && b.image === image) out.push(c.name);
    }
    return out.sort();
  }

  /** Forgets container `name`'s binding (the container is removed). */
  async forget(name: string): Promise<void> {
    await rm(this.#file(name), { force: true });
  }
}
