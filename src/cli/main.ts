#!/usr/bin/env node
/**
 * The `strata` command's entry. `strata`, `strata --help` and `strata
 * --version` are answered from the verbs table alone (see `verbs.ts`);
 * everything else goes to commander (`program.ts`), which loads only the
 * module of the verb being run.
 *
 * @module
 */
import { packageVersion, topLevelHelp, verbOf } from "./verbs.js";

const args = process.argv.slice(2);
if (verbOf(args) === undefined && (args.length === 0 || args.includes("--help") || args.includes("-h")))
  process.stdout.write(topLevelHelp());
else if (verbOf(args) === undefined && (args.includes("--version") || args.includes("-v")))
  process.stdout.write(`strata version ${packageVersion()}\n`);
else await (await import("./program.js")).run(args);
