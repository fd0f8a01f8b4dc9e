/**
 * cli-progress, loaded on first use: loading it took 19 ms of every strata
 * start, and only a progress bar drawn on a terminal needs it.
 *
 * @module
 */
import { createRequire } from "node:module";
import type cliProgressModule from "cli-progress";

let loaded: typeof cliProgressModule | undefined;

/** The cli-progress module, loaded on the first call. */
export function cliProgress(): typeof cliProgressModule {
  loaded ??= createRequire(import.meta.url)("cli-progress") as typeof cliProgressModule;
  return loaded;
}
