/**
 * The command line parsed by commander: the global options, the verbs,
 * and how a failure ends (see `errors.ts`). Only the group module of the
 * verb being run is loaded (the other verbs are listed from `verbs.ts`),
 * and it loads the library inside its action.
 *
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import { describeError, EXIT_USAGE, exitStatus, isUsageError, UsageError } from "./errors.js";
import { defineVerb, GLOBAL_OPTIONS, type Group, groupOf, packageVersion, VERBS, verbOf } from "./verbs.js";

/**
 * Loads a group module and returns its registration function. Here, not in
 * `verbs.ts`: the group modules import `verbs.ts` (defineVerb), so the
 * table of loaders there would make an import cycle.
 */
const GROUPS: Record<Group, () => Promise<(program: Command) => void>> = {
  image: async () => (await import("./commands/image.js")).imageCommands,
  transfer: async () => (await import("./commands/transfer.js")).transferCommands,
  container: async () => (await import("./commands/container.js")).containerCommands,
  layer: async () => (await import("./commands/layer.js")).layerCommands,
  store: async () => (await import("./commands/store.js")).storeCommands,
  auth: async () => (await import("./commands/auth.js")).authCommands,
  serve: async () => (await import("./commands/serve.js")).serveCommand,
  demo: async () => (await import("./commands/demo.js")).demoCommand,
  bench: async () => (await import("./commands/bench.js")).benchCommand,
};

/** "strata layer apply" for a command. */
function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * Parses `args` (the command line after `node main.js`) and runs the verb;
 * a failure ends the process with its one line and exit status.
 */
export async function run(args: string[]): Promise<void> {
  const program = new Command();
  program
    .name("strata")
    .usage("[OPTIONS] COMMAND")
    .version(`strata version ${packageVersion()}`, "-v, --version", "print the version and exit")
    // As docker: global flags before the verb, the verb's after it (so `create --storage-opt` is the
    // container's, `--storage-opt` before the verb the driver's).
    .enablePositionalOptions()
    .configureOutput({ outputError: () => {} });
  for (const o of GLOBAL_OPTIONS) {
    const opt = new Option(o.flags, o.description);
    if (o.env) opt.env(o.env);
    if (o.repeatable) opt.argParser((v: string, acc: string[] = []) => [...acc, v]).default([]);
    else if (o.defaultValue !== undefined) opt.default(o.defaultValue());
    program.addOption(opt);
  }

  // The verb's group defines its verbs in full; every other verb is listed by name only.
  const group = groupOf(verbOf(args));
  if (group) (await GROUPS[group]())(program);
  for (const name of Object.keys(VERBS))
    if (!program.commands.some((c) => c.name() === name)) defineVerb(program, name);
  program.configureHelp({ subcommandTerm: (c) => [c.name(), ...c.aliases()].join("|") });

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
    await program.parseAsync(args, { from: "user" });
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
      const global = err instanceof UsageError && err.global;
      if (isUsageError(err)) process.stderr.write(`See '${global ? "strata" : fullName(running)} --help'.\n`);
    }
    if (g.debug) process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(exitStatus(err));
  }
}
