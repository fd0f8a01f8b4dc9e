/**
 * Shared CLI plumbing: global options, opening the driver and store, output
 * as tables or JSON.
 *
 * @module
 */
import type { Command } from "commander";
import { builtinDrivers } from "../drivers/index.js";
import { InvalidArgumentError } from "../errors.js";
import type { Driver } from "../graphdriver/driver.js";
import { type Digest, isDigest, LayerStore } from "../layer/index.js";
import { withImageStore } from "../image/index.js";

export interface GlobalOptions {
  root: string;
  driver?: string;
  storageOpt: string[];
  json?: boolean;
  debug?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** Parses repeated `--storage-opt key=value` into a record. */
export function parseStorageOpts(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf("=");
    if (i <= 0)
      throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot parse storage option: expected key=value "${kv}"`);
    out[kv.slice(0, i).trim().toLowerCase()] = kv.slice(i + 1).trim();
  }
  return out;
}

export async function openDriver(g: GlobalOptions): Promise<Driver> {
  return builtinDrivers().select(g.driver, { root: g.root, options: parseStorageOpts(g.storageOpt) });
}

/** Runs `fn` with an open store, closing store and driver afterwards whatever happens. */
export async function withStore<T>(cmd: Command, fn: (store: LayerStore, g: GlobalOptions) => Promise<T>): Promise<T> {
  const g = globals(cmd);
  const driver = await openDriver(g);
  try {
    const store = await LayerStore.open(g.root, driver);
    try {
      return await fn(store, g);
    } finally {
      await store.close();
    }
  } finally {
    await driver.close(); // not cleanup(): mounts held by `strata mount` must outlive the command
  }
}

/** Resolves a full chainID, a unique hex prefix (with or without "sha256:"), or an image name or id. */
export async function resolveLayer(store: LayerStore, ref: string, root: string): Promise<Digest> {
  if (isDigest(ref) && (await store.db.readLayer(ref))) return ref;
  const image = await withImageStore(root, store.driver.name, (images) => images.topLayer(ref));
  if (image) return image as Digest;
  const hex = ref.replace(/^sha256:/, "");
  if (/^[a-f0-9]{4,64}$/.test(hex)) {
    const hits = (await store.layers()).filter((l) => l.chainID.slice(7).startsWith(hex));
    if (hits.length === 1) return hits[0]!.chainID;
    if (hits.length > 1)
      throw new InvalidArgumentError("ERR_AMBIGUOUS", `Cannot resolve layer: ambiguous prefix "${ref}"`);
  }
  throw new InvalidArgumentError("ERR_LAYER_NOT_FOUND", `Cannot resolve layer: no layer or image "${ref}"`);
}

/** Prints rows as an aligned table, or as JSON with `--json`. */
export function printTable(g: GlobalOptions, rows: Array<Record<string, string | number>>, columns: string[]): void {
  if (g.json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? "").length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  console.log(line(columns.map((c) => c.toUpperCase())));
  for (const r of rows) console.log(line(columns.map((c) => String(r[c] ?? ""))));
}

/** Human sizes as Docker prints them (decimal units). */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toPrecision(4).replace(/\.?0+$/, "")}${units[i]}`;
}

export function short(d: string): string {
  return d.replace(/^sha256:/, "").slice(0, 12);
}
