/**
 * Shared pieces of the hostile-store tests: a store per test driven through
 * the `strata` command as a user would, and hostile layers.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { ExecutionContext } from "ava";
import { type CliResult, strata } from "../helpers/cli.js";
import { driverTestArgs } from "../helpers/drivers.js";
import { makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

/** A store root for one test (removed, with whatever is mounted in it, when the test ends). */
export interface CliStore {
  root: string;
  /** Runs `strata --root ROOT --driver DRIVER args…`. */
  run(...args: string[]): Promise<CliResult>;
  /** Runs and fails the test unless it exits 0; returns stdout. */
  ok(...args: string[]): Promise<string>;
}

export async function cliStore(t: ExecutionContext, driver: string): Promise<CliStore> {
  const dir = await tempDir(t, "strata-hostile-");
  const root = join(dir, "root");
  await mkdir(root, { mode: 0o710 });
  const run = (...args: string[]) => strata(["--root", root, "--driver", driver, ...driverTestArgs(driver), ...args]);
  return {
    root,
    run,
    async ok(...args) {
      const r = await run(...args);
      t.is(r.code, 0, `strata ${args.join(" ")} failed: ${r.stderr}`);
      return r.stdout;
    },
  };
}

/**
 * A layer whose directories nest `depth` levels (`s0/a/a/…/a/leaf`), far past
 * PATH_MAX, while every entry name stays short: after each `hop` levels a
 * symlink `sK -> /s(K-1)/a/…/a` lets the next entries start from there.
 */
export function deepLayer(depth = 3000, hop = 300): Promise<Buffer> {
  const specs: Spec[] = [{ name: "s0/" }];
  let prefix = "s0";
  let made = 0;
  for (let k = 1; made < depth; k++) {
    let p = prefix;
    const n = Math.min(hop, depth - made);
    for (let i = 0; i < n; i++) {
      p += "/a";
      specs.push({ name: `${p}/` });
    }
    made += n;
    specs.push({ name: `s${k}`, type: "symlink", linkname: `/${p}` });
    prefix = `s${k}`;
  }
  specs.push({ name: `${prefix}/leaf`, content: "at the bottom\n" });
  return makeTar(specs);
}

/** The chainID `layer apply` printed (its last line). */
export function lastLine(stdout: string): string {
  return stdout.trim().split("\n").pop() ?? "";
}
