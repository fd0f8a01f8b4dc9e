/**
 * `strata demo`: the store's main job end to end on a real image, on every
 * driver that works here, with the time of each step (see `../demo.ts`).
 *
 * @module
 */
import type { Command } from "commander";
import { globals } from "../context.js";
import { defineVerb } from "../verbs.js";

/** Adds `strata demo`. */
export function demoCommand(program: Command): void {
  defineVerb(program, "demo")
    .option("--drivers <list>", "comma-separated drivers (default: every one that works here)")
    .option("--keep", "keep the demo's store (under --root when given, else a temp dir) for a look afterwards")
    .action(async (o: { drivers?: string; keep?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const explicitRoot = cmd.parent?.getOptionValueSource("root") !== "default";
      const { runDemo } = await import("../demo.js");
      await runDemo(
        {
          ...(explicitRoot ? { root: g.root } : {}),
          ...(o.drivers ? { drivers: o.drivers.split(",") } : g.driver ? { drivers: [g.driver] } : {}),
          keep: o.keep ?? false,
        },
        (line) => process.stdout.write(`${line}\n`),
      );
    });
}
