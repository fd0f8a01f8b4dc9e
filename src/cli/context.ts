/**
 * Shared CLI plumbing: the global options, opening the store (through the
 * library's `openStore`, loaded when a command first needs it), and where
 * output goes (stdout: only the result).
 *
 * This module imports no driver, layer or image code at load time, so
 * `strata --help` and usage errors never pay for them.
 *
 * @module
 */
import type { Command } from "commander";
import type { Driver } from "../graphdriver/driver.js";
import type { Store } from "../store/index.js";
import { UsageError } from "./errors.js";

/** The options every command has (see main.ts). */
export interface GlobalOptions {
  root: string;
  driver?: string;
  storageOpt: string[];
  json?: boolean;
  debug?: boolean;
}

/** The global options as seen from `cmd`. */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/**
 * Parses repeated `--storage-opt key=value` into a record (keys lower-cased,
 * as Docker reads them).
 * @throws ERR_USAGE for an entry without "="
 */
export function parseStorageOpts(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new UsageError(`Cannot parse storage option: expected key=value "${kv}"`, { global: true });
    out[kv.slice(0, i).trim().toLowerCase()] = kv.slice(i + 1).trim();
  }
  return out;
}

/** Errors of opening a driver that come from the global flags `--driver` and `--storage-opt`. */
const FLAG_CODES = new Set(["ERR_INVALID_OPTION", "ERR_DRIVER_UNKNOWN"]);

/** Runs `open`, reporting a bad `--driver` or `--storage-opt` as a usage error of the global flags. */
async function fromGlobalFlags<T>(open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    const code = (err as { code?: string }).code ?? "";
    if (!FLAG_CODES.has(code)) throw err;
    throw new UsageError((err as Error).message, { code, global: true, cause: err });
  }
}

/** Opens only the driver (for commands that serve it to others). */
export async function openDriver(g: GlobalOptions): Promise<Driver> {
  const { builtinDrivers } = await import("../drivers/index.js");
  const options = parseStorageOpts(g.storageOpt);
  return fromGlobalFlags(() => builtinDrivers().select(g.driver, { root: g.root, options }));
}

/** Runs `fn` with the store of the global options open, closing it afterwards whatever happens. */
export async function withStore<T>(cmd: Command, fn: (store: Store, g: GlobalOptions) => Promise<T>): Promise<T> {
  const g = globals(cmd);
  const options = parseStorageOpts(g.storageOpt);
  const { openStore } = await import("../store/index.js");
  const store = await fromGlobalFlags(() =>
    openStore({ root: g.root, ...(g.driver ? { driver: g.driver } : {}), options }),
  );
  try {
    return await fn(store, g);
  } finally {
    await store.close();
  }
}

/** Writes result lines to stdout. */
export function print(...lines: string[]): void {
  for (const l of lines) process.stdout.write(`${l}\n`);
}

/** Reads all of stdin as text (a password from `--password-stdin`), without the final newline. */
export async function readStdinText(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

/** Parses a non-negative integer flag value. @throws ERR_USAGE */
export function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`Cannot use the number: not a non-negative integer "${v}"`);
  return n;
}

/** Collects a repeatable flag's values (`-c A -c B`). */
export function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}
