#!/usr/bin/env node
/**
 * The `strata` command: global options, sub-commands, and the one-line error.
 *
 * @module
 */
import { Command, Option } from "commander";
import { InvalidArgumentError, StrataError } from "../errors.js";
import { benchCommand } from "./commands/bench.js";
import { containerCommands } from "./commands/container.js";
import { layerCommands } from "./commands/layer.js";
import { serveCommand } from "./commands/serve.js";
import { storeCommands } from "./commands/store.js";
import { openFromGlobals, registerImageCommands } from "./images.js";
import { runDemo } from "./demo.js";

const program = new Command();
program
  .name("strata")
  .description("A layered container-image store")
  .option("--root <dir>", "store root", process.env.STRATA_ROOT ?? "/var/lib/strata")
  .addOption(new Option("--driver <name>", "storage driver (default: automatic)").env("STRATA_DRIVER"))
  .option(
    "--storage-opt <key=value>",
    "driver option (repeatable)",
    (v: string, acc: string[]) => [...acc, v],
    [] as string[],
  )
  .option("--json", "machine-readable output for listings")
  .option("--debug", "show stack traces on errors")
  .showHelpAfterError();

layerCommands(program);
containerCommands(program);
storeCommands(program);
registerImageCommands(program, openFromGlobals(program));
benchCommand(program);
serveCommand(program);

program
  .command("demo")
  .description("run the main job end to end on a built-in sample layer")
  .option("-o, --output <file>", "where to write the committed layer tar")
  .action(async (o: { output?: string }, cmd: Command) => {
    const g = cmd.optsWithGlobals<{ root: string; driver?: string; storageOpt: string[] }>();
    const explicitRoot = cmd.parent?.getOptionValueSource("root") !== "default";
    await runDemo({ root: explicitRoot ? g.root : undefined, driver: g.driver, output: o.output }, (s) =>
      console.log(s),
    );
  });

try {
  await program.parseAsync();
} catch (err) {
  const debug = program.opts<{ debug?: boolean }>().debug;
  const code = err instanceof StrataError ? ` [${err.code}]` : "";
  console.error(`strata: ${(err as Error).message.split("\n")[0]}${code}`);
  if (debug) console.error((err as Error).stack);
  // 2 for bad usage or input, 1 for everything else.
  process.exit(err instanceof InvalidArgumentError ? 2 : 1);
}
