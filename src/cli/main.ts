#!/usr/bin/env node
/**
 * The `strata` command.
 *
 * @module
 */
import { Command } from "commander";
import { StrataError } from "../errors.js";
import { runDemo } from "./demo.js";

const program = new Command();
program.name("strata").description("A layered container-image store").option("--debug", "show stack traces on errors");

program
  .command("demo")
  .description("run the main job end to end on a built-in sample layer")
  .option("--root <dir>", "store root (default: a new temporary directory)")
  .option("--driver <name>", "storage driver (default: automatic)")
  .option("-o, --out <file>", "where to write the committed layer tar")
  .action(async (o: { root?: string; driver?: string; out?: string }) => {
    await runDemo(o, (s) => console.log(s));
  });

try {
  await program.parseAsync();
} catch (err) {
  const debug = program.opts<{ debug?: boolean }>().debug;
  const code = err instanceof StrataError ? ` [${err.code}]` : "";
  console.error(`strata: ${(err as Error).message}${code}`);
  if (debug) console.error((err as Error).stack);
  process.exit(1);
}
