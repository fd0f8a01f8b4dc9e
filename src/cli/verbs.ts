/**
 * The table of strata's verbs: each verb's group module (`commands/*.ts`),
 * one-line description and arguments. `program.ts` imports only the group
 * of the verb being run and lists the others from this table, so a command's
 * start pays for its own verb only, and `--help` for none. The group
 * modules start each definition with {@link defineVerb}, so the table is
 * the one place a verb's description and arguments are written.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";

/** A global option: before the verb, for every verb. */
export interface GlobalOption {
  /** Commander's syntax: "--root <dir>". */
  flags: string;
  description: string;
  /** The environment variable that sets it. */
  env?: string;
  defaultValue?: () => string;
  /** Given several times, it collects a list. */
  repeatable?: boolean;
}

/** The global options, as `strata --help` lists them. */
export const GLOBAL_OPTIONS: GlobalOption[] = [
  {
    flags: "--root <dir>",
    description: 'Store root (default "/var/lib/strata")',
    env: "STRATA_ROOT",
    defaultValue: () => "/var/lib/strata",
  },
  {
    flags: "--driver <name>",
    description: "Storage driver: overlay, devmapper, vfs (default: automatic)",
    env: "STRATA_DRIVER",
  },
  {
    flags: "--storage-opt <key=value>",
    description: "Driver option, e.g. overlay.size=10G (repeatable)",
    repeatable: true,
  },
  { flags: "--json", description: "Print results as JSON (progress on stderr as JSON lines)" },
  { flags: "--debug", description: "Show stack traces on errors" },
];

/** The package's version, from package.json (three folders above dist/src/cli). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/**
 * `strata --help`, laid out as `docker --help` is, from the tables alone:
 * printing it loads no other module (commander included).
 */
export function topLevelHelp(): string {
  const flags = [
    ...GLOBAL_OPTIONS.map((o) => [`      ${o.flags}`, `${o.description}${o.env ? ` (env ${o.env})` : ""}`]),
    ["  -v, --version", "Print the version and exit"],
    ["  -h, --help", "Print this help"],
  ];
  const fw = Math.max(...flags.map(([f]) => f!.length)) + 2;
  const names = Object.entries(VERBS).map(([n, v]) => [[n, ...(v.aliases ?? [])].join("|"), v.summary]);
  const nw = Math.max(...names.map(([n]) => n!.length)) + 2;
  return [
    "Usage:  strata [OPTIONS] COMMAND",
    "",
    "A layered container-image store: Docker's graphdrivers and layer store, as a command and a library",
    "",
    "Options:",
    ...flags.map(([f, d]) => `${f!.padEnd(fw)}${d}`),
    "",
    "Commands:",
    ...names.map(([n, d]) => `  ${n!.padEnd(nw)}${d}`),
    "",
    "Run 'strata COMMAND --help' for more information on a command.",
    "",
  ].join("\n");
}

/** The module that defines a group of verbs. */
export type Group = "image" | "transfer" | "container" | "layer" | "store" | "auth" | "serve" | "demo" | "bench";

/** A verb's entry: its group, its description, its arguments ([syntax, description]) and aliases. */
export interface VerbInfo {
  group: Group;
  summary: string;
  args?: Array<[string, string]>;
  aliases?: string[];
}

/** Every top-level verb, in the order `strata --help` lists them. */
export const VERBS: Record<string, VerbInfo> = {
  images: { group: "image", summary: "List images", args: [["[repository[:tag]]", "only this repository (and tag)"]] },
  history: { group: "image", summary: "Show the history of an image", args: [["<image>", "name or id"]] },
  rmi: {
    group: "image",
    summary: "Remove one or more images (a name of several only loses the name)",
    args: [["<image...>", "names or ids"]],
  },
  tag: {
    group: "image",
    summary: "Give an image another name",
    args: [
      ["<source>", "image name or id"],
      ["<target>", "new name, [registry/]repository[:tag]"],
    ],
  },
  inspect: {
    group: "image",
    summary: "Show images in detail, as a JSON array (as docker inspect)",
    args: [["<image...>", "names or ids"]],
  },
  pull: {
    group: "transfer",
    summary: "Download an image from a registry",
    args: [["<name[:tag|@digest]>", "the image"]],
  },
  push: {
    group: "transfer",
    summary: "Upload an image to a registry",
    args: [
      ["<image>", "the stored image"],
      ["[target]", "push under this name instead (default: the image's name)"],
    ],
  },
  load: {
    group: "transfer",
    summary: "Load images from a docker-archive or OCI layout (a file, a directory, or stdin; compressed or not)",
    args: [["[path]", "FILE|DIR[:TAG], or - for stdin (default: stdin, or -i)"]],
  },
  save: {
    group: "transfer",
    summary: "Save images to a tar archive (docker-archive; streamed to stdout without -o), or an OCI layout",
    args: [["<image...>", "names or ids"]],
  },
  import: {
    group: "transfer",
    summary: "Create an image from a filesystem tarball (as docker export writes)",
    args: [
      ["<file|->", "the tar (any compression), or - for stdin"],
      ["[repository[:tag]]", "name for the new image"],
    ],
  },
  create: {
    group: "container",
    summary: "Create a container: a writable layer on an image (none: an empty one)",
    args: [
      ["<name>", "the container's name"],
      ["[image]", "image name or id, or a layer"],
    ],
  },
  mount: {
    group: "container",
    summary: "Mount a container's filesystem and print its path (held until `unmount`)",
    args: [["<container>", "name or id"]],
  },
  unmount: {
    group: "container",
    summary: "Release one `mount` of a container",
    args: [["<container...>", "names or ids"]],
    aliases: ["umount"],
  },
  rm: { group: "container", summary: "Remove one or more containers", args: [["<container...>", "names or ids"]] },
  ps: { group: "container", summary: "List containers" },
  diff: {
    group: "container",
    summary: "List what a container changed (A added, C changed, D deleted), as docker diff",
    args: [["<container>", "name or id"]],
  },
  commit: {
    group: "container",
    summary: "Create a new image from a container's changes, and print its id",
    args: [
      ["<container>", "name or id"],
      ["[repository[:tag]]", "name for the new image"],
    ],
  },
  export: {
    group: "container",
    summary: "Write a container's filesystem as a tar archive (to stdout without -o)",
    args: [["<container>", "name or id"]],
  },
  layer: { group: "layer", summary: "Manage image layers applied by hand (apply, ls, export, rm)" },
  info: { group: "store", summary: "Show the store's driver and contents" },
  check: { group: "store", summary: "Verify the store (refcounts, orphans, driver layers, mounts, image references)" },
  prune: { group: "store", summary: "Remove layers nothing references (and references left by dead imports)" },
  system: { group: "store", summary: "Manage the store (df)" },
  login: {
    group: "auth",
    summary: "Log in to a registry (credentials saved as docker login saves them)",
    args: [["[server]", "registry host[:port] (default: Docker Hub)"]],
  },
  logout: {
    group: "auth",
    summary: "Log out from a registry (removes the saved credentials)",
    args: [["[server]", "registry host[:port] (default: Docker Hub)"]],
  },
  serve: {
    group: "serve",
    summary: "Serve the store to dockerd (graphdriver plugin) and containerd (proxy snapshotter), in the foreground",
  },
  demo: {
    group: "demo",
    summary: "Show the store at work on a small real image, on every driver that works here, with timings",
  },
  bench: {
    group: "bench",
    summary: "Benchmark the drivers (and peers) and write results.json, results.md and report.html",
  },
};

/**
 * Starts the definition of verb `name` under `parent`: the command with the
 * description, arguments and aliases the table gives it. The group module
 * adds its options and action.
 */
export function defineVerb(parent: Command, name: string): Command {
  const info = VERBS[name];
  if (!info) throw new Error(`strata: verb "${name}" is not in src/cli/verbs.ts`);
  const cmd = parent.command(name).description(info.summary);
  for (const [syntax, description] of info.args ?? []) cmd.argument(syntax, description);
  for (const a of info.aliases ?? []) cmd.alias(a);
  return cmd;
}

/** Global options that take a value (so the verb is not mistaken for one). */
const VALUED = new Set(["--root", "--driver", "--storage-opt"]);

/**
 * The verb a command line names: the first word after the global options
 * (which come before the verb), or the verb `help` asks about; undefined
 * when there is none (`strata`, `strata --help`).
 */
export function verbOf(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return args[i + 1];
    if (a.startsWith("-")) {
      if (VALUED.has(a)) i++;
      continue;
    }
    if (a === "help") return args[i + 1];
    return a;
  }
  return undefined;
}

/** The group whose module defines `verb` (aliases included). */
export function groupOf(verb: string | undefined): Group | undefined {
  if (!verb) return undefined;
  for (const [name, info] of Object.entries(VERBS))
    if (name === verb || info.aliases?.includes(verb)) return info.group;
  return undefined;
}
