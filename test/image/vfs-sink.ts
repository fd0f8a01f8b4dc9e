/**
 * A real LayerSink for tests, until the LayerStore lands: each layer is a
 * vfs layer (full copy of its parent) with the tar applied by the diff
 * engine; the exact tar is kept beside it so tarStream() can hand it back,
 * verified. Metadata per chainID under `<root>/layers/<hex>/` is written
 * into a temporary directory and renamed into place, so a failed register
 * leaves nothing. release() drops a reference; at zero the layer goes.
 */
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { applyLayer } from "../../src/diff/index.js";
import { createVfs } from "../../src/drivers/vfs/index.js";
import type { Driver } from "../../src/graphdriver/driver.js";
import { DigestMismatchError, DigestStream } from "../../src/image/digest.js";
import type { LayerSink, RegisteredLayer } from "../../src/image/layer-sink.js";

interface Meta {
  diffID: string;
  parent: string;
  cacheID: string;
  size: number;
  refs: number;
}

const hex = (d: string) => d.replace(/^sha256:/, "");

export class VfsSink implements LayerSink {
  readonly root: string;
  readonly driver: Driver;
  #layers: string;
  /** Serialises metadata changes (registers of the same chain may race). */
  #lock: Promise<unknown> = Promise.resolve();

  private constructor(root: string, driver: Driver) {
    this.root = root;
    this.driver = driver;
    this.#layers = join(root, "layers");
  }

  static async open(root: string): Promise<VfsSink> {
    await mkdir(join(root, "layers"), { recursive: true });
    return new VfsSink(root, await createVfs({ root, options: {} }));
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  async #meta(chainID: string): Promise<Meta | undefined> {
    try {
      return JSON.parse(await readFile(join(this.#layers, hex(chainID), "meta.json"), "utf8")) as Meta;
    } catch {
      return undefined;
    }
  }

  async has(chainID: string): Promise<boolean> {
    return (await this.#meta(chainID)) !== undefined;
  }

  /** Every stored chainID. */
  async chainIDs(): Promise<string[]> {
    return (await readdir(this.#layers)).filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** Every vfs layer directory (to check nothing is left half made). */
  async driverLayers(): Promise<string[]> {
    return readdir(join(this.root, "vfs", "dir"));
  }

  async register(tar: Readable, parentChainID: string, expectDiffID?: string): Promise<RegisteredLayer> {
    const parent = parentChainID ? await this.#meta(parentChainID) : undefined;
    if (parentChainID && !parent) throw new Error(`parent layer not found ${parentChainID}`);
    const cacheID = randomBytes(16).toString("hex");
    const work = join(this.#layers, `.tmp-${cacheID}`);
    await mkdir(work);
    const hash = createHash("sha256");
    let tarSize = 0;
    const file = createWriteStream(join(work, "layer.tar"));
    let created = false;
    try {
      await this.driver.create(cacheID, parent?.cacheID ?? "");
      created = true;
      const gen = (async function* () {
        for await (const c of tar) {
          hash.update(c as Buffer);
          tarSize += (c as Buffer).length;
          if (!file.write(c)) await once(file, "drain");
          yield c as Buffer;
        }
      })();
      // applyLayer stops at the end-of-archive marker; the rest is drained below, so return() is not forwarded.
      const iterable = { [Symbol.asyncIterator]: () => ({ next: () => gen.next() }) };
      const dir = await this.driver.get(cacheID);
      let size: number;
      try {
        size = (await applyLayer(dir, iterable)).size;
      } finally {
        await this.driver.put(cacheID);
      }
      for (let r = await gen.next(); !r.done; r = await gen.next());
      file.end();
      await once(file, "close");
      const diffID = `sha256:${hash.digest("hex")}`;
      if (expectDiffID && diffID !== expectDiffID) throw DigestMismatchError.of("layer", expectDiffID, diffID);
      const chainID = parentChainID
        ? `sha256:${createHash("sha256").update(`${parentChainID} ${diffID}`).digest("hex")}`
        : diffID;
      return await this.#serial(async () => {
        const existing = await this.#meta(chainID);
        if (existing) {
          existing.refs++;
          await writeFile(join(this.#layers, hex(chainID), "meta.json"), JSON.stringify(existing));
          await this.driver.remove(cacheID);
          await rm(work, { recursive: true, force: true });
          return { chainID, diffID, size: existing.size, tarSize };
        }
        const meta: Meta = { diffID, parent: parentChainID, cacheID, size, refs: 1 };
        await writeFile(join(work, "meta.json"), JSON.stringify(meta));
        await rename(work, join(this.#layers, hex(chainID)));
        return { chainID, diffID, size, tarSize };
      });
    } catch (err) {
      tar.destroy();
      file.destroy();
      if (created) await this.driver.remove(cacheID);
      await rm(work, { recursive: true, force: true });
      throw err;
    }
  }

  async tarStream(chainID: string): Promise<Readable> {
    const meta = await this.#meta(chainID);
    if (!meta) throw new Error(`layer not found ${chainID}`);
    const path = join(this.#layers, hex(chainID), "layer.tar");
    const { size } = await stat(path);
    const check = new DigestStream(`layer ${meta.diffID}`, { digest: meta.diffID, size });
    const s = createReadStream(path, { highWaterMark: 1 << 20 });
    s.on("error", (e) => check.destroy(e));
    return s.pipe(check);
  }

  /** The tree of a stored layer. */
  async path(chainID: string): Promise<string> {
    const meta = await this.#meta(chainID);
    if (!meta) throw new Error(`layer not found ${chainID}`);
    return this.driver.get(meta.cacheID);
  }

  async release(chainID: string): Promise<void> {
    await this.#serial(async () => {
      const meta = await this.#meta(chainID);
      if (!meta) return;
      meta.refs--;
      if (meta.refs > 0) {
        await writeFile(join(this.#layers, hex(chainID), "meta.json"), JSON.stringify(meta));
        return;
      }
      const doomed = join(this.#layers, `.tmp-rm-${randomBytes(4).toString("hex")}`);
      await rename(join(this.#layers, hex(chainID)), doomed);
      await this.driver.remove(meta.cacheID);
      await rm(doomed, { recursive: true, force: true });
    });
  }
}
