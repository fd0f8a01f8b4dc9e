#!/usr/bin/env node
/**
 * The `strata` command: global options, the verbs, and how a failure ends
 * (see `errors.ts`). Every verb's module imports the library only inside
 * its action, so parsing the command line — and `--help` — loads commander
 * and these small modules, nothing else.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { authCommands } from "./commands/auth.js";
import { benchCommand } from "./commands/bench.js";
import { containerCommands } from "./commands/container.js";
import { demoCommand } from "./commands/demo.js";
import { imageCommands } from "./commands/image.js";
import { layerCommands } from "./commands/layer.js";
import { storeCommands } from "./commands/store.js";
import { transferCommands } from "./commands/transfer.js";
import { describeError, EXIT_USAGE, exitStatus, isUsageError } from "./errors.js";

/** The package version, from package.json two folders above dist/src/cli. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** "strata layer apply" for a command. */
function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

const program = new Command();
program
  .name("strata")
  .description("A layered container-image store: Docker's graphdrivers and layer store, as a command and a library")
  .usage("[OPTIONS] COMMAND")
  .version(`strata version ${version()}`, "-v, --version", "print the version and exit")
  .option("--root <dir>", "store root (env STRATA_ROOT)", process.env.STRATA_ROOT ?? "/var/lib/strata")
  .addOption(
    new Option("--driver <name>", "storage driver: overlay, devmapper, vfs (default: automatic)").env("STRATA_DRIVER"),
  )
  .option(
    "--storage-opt <key=value>",
    "driver option, e.g. overlay.size=10G (repeatable)",
    (v: string, acc: string[]) => [...acc, v],
    [] as string[],
  )
  .option("--json", "print results as JSON (progress on stderr as JSON lines)")
  .option("--debug", "show stack traces on errors")
  // As docker: global flags before the verb, the verb's after it (so `create --storage-opt` is the
  // container's, `--storage-opt` before the verb the driver's).
  .enablePositionalOptions()
  .configureOutput({ outputError: () => {} });

imageCommands(program);
transferCommands(program);
containerCommands(program);
layerCommands(program);
storeCommands(program);
authCommands(program);
demoCommand(program);
benchCommand(program);

// --json is also each verb's own flag, so `strata images --json` works as `strata --json images`.
const addJson = (c: Command): void => {
  if (c.commands.length === 0 && !c.options.some((o) => o.long === "--json"))
    c.option("--json", "print the result as JSON (progress on stderr as JSON lines)");
  c.commands.forEach(addJson);
};
program.commands.forEach(addJson);

/** The command whose action runs (for the "See ... --help" line of errors it throws). */
let running: Command = program;
program.hook("preAction", (_top, action) => {
  running = action;
});
// Each command reports its own usage errors, so the hint names it.
const overrideExits = (c: Command): void => {
  c.exitOverride((err) => {
    throw Object.assign(err, { command: c });
  });
  c.commands.forEach(overrideExits);
};
overrideExits(program);

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with status 0; so does a bare `strata` or `strata layer`,
    // whose help commander printed already (docker prints its help and exits 0 there too).
    if (err.exitCode === 0 || err.code === "commander.help") process.exit(0);
    const cmd = (err as CommanderError & { command?: Command }).command ?? program;
    // One line: commander's "(Did you mean ...?)" guesses are left out.
    const message = err.message.replace(/^error: /, "").split("\n")[0];
    process.stderr.write(`strata: ${message}\nSee '${fullName(cmd)} --help'.\n`);
    process.exit(EXIT_USAGE);
  }
  const g = running.optsWithGlobals<{ debug?: boolean; json?: boolean }>();
  const line = describeError(err, fullName(running).replace(/^strata ?/, "") || "run strata");
  if (g.json) {
    const code = (err as { code?: string }).code;
    process.stderr.write(
      `${JSON.stringify({ errorDetail: { message: line, ...(code ? { code } : {}) }, error: line })}\n`,
    );
  } else {
    process.stderr.write(`strata: ${line}\n`);
    // A bad global flag (--driver, --storage-opt) is the top command's; others are the verb's.
    const global = ["ERR_INVALID_OPTION", "ERR_DRIVER_UNKNOWN"].includes((err as { code?: string }).code ?? "");
    if (isUsageError(err)) process.stderr.write(`See '${global ? "strata" : fullName(running)} --help'.\n`);
  }
  if (g.debug) process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(exitStatus(err));
}
