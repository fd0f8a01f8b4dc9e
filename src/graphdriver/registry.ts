/**
 * The driver registry and Docker-style auto-selection. Drivers are listed
 * here explicitly (no import side effects), in priority order.
 *
 * Selection (Docker's `graphdriver.New`):
 * 1. an explicitly named driver is used, and its errors are fatal;
 * 2. otherwise a driver whose home `<root>/<name>` exists and is non-empty
 *    wins (its errors are fatal: its layers would "disappear"); two such
 *    homes are an error asking the user to choose. A fallback driver (vfs)
 *    does not count, as in Docker's scan: anyone may name it for a while;
 * 3. otherwise the first driver in priority order that does not report
 *    "not supported", skipping deprecated ones (Docker v23+).
 *
 * Before any driver runs, the root is checked (and made 0710 when missing):
 * see `src/util/store-root.ts`.
 *
 * @module
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotSupportedError } from "../errors.js";
import { openStoreRoot } from "../util/store-root.js";
import type { Driver, DriverFactory, DriverOptions } from "./driver.js";

/** A driver as the registry knows it. */
export interface DriverEntry {
  name: string;
  factory: DriverFactory;
  /**
   * Deprecated drivers (devmapper, as in Docker v23+) are used when named or
   * when their home holds state, but skipped by the priority walk.
   */
  deprecated?: boolean;
  /**
   * The driver anyone may name for a while on any store (vfs): its home does
   * not make it the store's driver (Docker's prior-driver scan skips vfs).
   */
  fallback?: boolean;
}

/** A registry: names are unique; order is priority order. */
export class DriverRegistry {
  #entries: DriverEntry[] = [];

  register(entry: DriverEntry): void {
    if (this.#entries.some((e) => e.name === entry.name)) {
      throw new InvalidArgumentError("ERR_DRIVER_EXISTS", `Cannot register driver: name taken "${entry.name}"`);
    }
    this.#entries.push(entry);
  }

  names(): string[] {
    return this.#entries.map((e) => e.name);
  }

  get(name: string): DriverEntry {
    const e = this.#entries.find((x) => x.name === name);
    if (!e) {
      throw new InvalidArgumentError(
        "ERR_DRIVER_UNKNOWN",
        `Cannot use storage driver: unknown driver "${name}" (known: ${this.names().join(", ")})`,
      );
    }
    return e;
  }

  /** Drivers whose home under `root` exists and is not empty (a fallback driver never counts). */
  async priorDrivers(root: string): Promise<string[]> {
    const found: string[] = [];
    for (const e of this.#entries) {
      if (e.fallback) continue;
      try {
        if ((await readdir(join(root, e.name))).length > 0) found.push(e.name);
      } catch {
        // no home: not a prior driver
      }
    }
    return found;
  }

  /**
   * Creates the driver to use under `opts.root`.
   * @param name explicit driver name, or undefined for auto-selection
   * @throws ERR_STORE_ROOT for a root that is empty, not owned by root or
   *   writable by others; ERR_DRIVER_UNKNOWN; ERR_DRIVER_AMBIGUOUS when
   *   several prior homes exist; ERR_NO_DRIVER when nothing is supported here
   */
  async select(name: string | undefined, opts: DriverOptions): Promise<Driver> {
    await (await openStoreRoot(opts.root)).close();
    if (name) return this.get(name).factory(opts);
    const prior = await this.priorDrivers(opts.root);
    if (prior.length > 1) {
      throw new FailedPreconditionError(
        "ERR_DRIVER_AMBIGUOUS",
        `Cannot choose a storage driver: "${opts.root}" contains several valid drivers (${prior.join(", ")}); choose one with --driver`,
      );
    }
    if (prior.length === 1) return this.get(prior[0]!).factory(opts);
    const reasons: string[] = [];
    for (const e of this.#entries) {
      if (e.deprecated) {
        reasons.push(`${e.name}: deprecated, used only when named`);
        continue;
      }
      try {
        return await e.factory(opts);
      } catch (err) {
        if (!(err instanceof NotSupportedError)) throw err;
        reasons.push(`${e.name}: ${err.message}`);
      }
    }
    throw new NotSupportedError(
      "ERR_NO_DRIVER",
      `Cannot choose a storage driver: none is supported here (${reasons.join("; ")})`,
    );
  }
}
