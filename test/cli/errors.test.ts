/**
 * How the command fails on bad input and bad calls, as a docker user
 * expects: one line (no stack trace, no raw errno text), exit 1 for errors,
 * 125 with "See 'strata X --help'." for usage errors, and nothing half done.
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import test from "ava";
import { strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

/** A vfs store in a fresh temp dir, and the global flags to reach it. */
async function vfsStore(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t, "strata-cli-err-");
  return { dir, g: ["--root", join(dir, "root"), "--driver", "vfs"] };
}

/** Every .tmp file left anywhere under `dir`. */
async function tmpFiles(dir: string): Promise<string[]> {
  const all = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return all.filter((p) => /\.tmp/.test(p));
}

function oneLine(t: Parameters<typeof tempDir>[0], stderr: string) {
  t.is(stderr.split("\n").filter(Boolean).length, 1, stderr);
  t.notRegex(stderr, /\n\s+at |Unhandled|node:events/, "no stack trace");
}

test("layer apply of a missing file, a directory and a truncated .gz: one line, exit 1, nothing left", async (t) => {
  const { dir, g } = await vfsStore(t);
  const missing = await strata([...g, "layer", "apply", join(dir, "missing.tar")]);
  t.is(missing.code, 1);
  oneLine(t, missing.stderr);
  t.regex(missing.stderr, /^strata: Cannot apply the layer: no such file ".*missing\.tar" \[ERR_FILE_NOT_FOUND\]\n$/);

  const folder = await strata([...g, "layer", "apply", dir]);
  t.is(folder.code, 1);
  oneLine(t, folder.stderr);
  t.regex(folder.stderr, /Cannot apply the layer: is a directory, not a file/);
  t.notRegex(folder.stderr, /EISDIR/);

  const whole = gzipSync(await makeTar([{ name: "a", content: "x".repeat(100_000) }]));
  await writeFile(join(dir, "cut.tar.gz"), whole.subarray(0, whole.length >> 1));
  const cut = await strata([...g, "layer", "apply", join(dir, "cut.tar.gz")]);
  t.is(cut.code, 1);
  oneLine(t, cut.stderr);
  t.regex(cut.stderr, /\[ERR_DECOMPRESS\]/);
  t.deepEqual(await tmpFiles(join(dir, "root")), [], "no intent temp files left");
  const check = await strata([...g, "check"]);
  t.is(check.code, 0, check.stdout);
});

test("usage errors: a short message, the help hint, exit 125 — not the whole help", async (t) => {
  const { g } = await vfsStore(t);
  const flag = await strata([...g, "images", "--no-such-flag"]);
  t.is(flag.code, 125);
  t.is(flag.stderr, "strata: unknown option '--no-such-flag'\nSee 'strata images --help'.\n");
  const arg = await strata([...g, "rm"]);
  t.is(arg.code, 125);
  t.is(arg.stderr, "strata: missing required argument 'container'\nSee 'strata rm --help'.\n");
  const nested = await strata([...g, "layer", "apply"]);
  t.is(nested.code, 125);
  t.regex(nested.stderr, /\nSee 'strata layer apply --help'\.\n$/);
  const verb = await strata([...g, "frobnicate"]);
  t.is(verb.code, 125);
  t.regex(verb.stderr, /^strata: unknown command 'frobnicate'\nSee 'strata --help'\.\n$/);
  // As docker: global flags before the verb, the verb's own after it; --json is both.
  const late = await strata(["images", "--root", "/tmp"]);
  t.is(late.code, 125);
  t.regex(late.stderr, /^strata: unknown option '--root'\nSee 'strata images --help'\.\n$/);
  const json = await strata([...g, "images", "--json"]);
  t.is(json.code, 0, json.stderr);
  t.deepEqual(JSON.parse(json.stdout), []);
  const help = await strata(["images", "--help"]);
  t.is(help.code, 0);
  t.regex(help.stdout, /Usage: strata images/);
});

test("not found exits 1 for a layer, an image and a container alike", async (t) => {
  const { g } = await vfsStore(t);
  for (const args of [
    ["layer", "export", "abcdef123456"],
    ["create", "c", "no-such-image:1"],
    ["inspect", "no-such-image:1"],
    ["rmi", "no-such-image:1"],
    ["diff", "no-such-container"],
  ]) {
    const r = await strata([...g, ...args]);
    t.is(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    t.regex(r.stderr, /^strata: Cannot .*_NOT_FOUND\]\n$/, args.join(" "));
  }
});

test("storage options the driver does not take are refused, naming the option", async (t) => {
  const { dir } = await vfsStore(t);
  const cases: Array<[string, string]> = [
    ["vfs", "foo=bar"],
    ["vfs", "overlay.size=1G"],
    ["overlay", "overlay2.size=1G"],
    ["overlay", "dm.basesize=10G"],
  ];
  for (const [driver, opt] of cases) {
    const r = await strata(["--root", join(dir, driver), "--driver", driver, "--storage-opt", opt, "info"]);
    t.is(r.code, 125, `${driver} ${opt}: ${r.stderr}`);
    t.regex(
      r.stderr,
      new RegExp(`^strata: Cannot start ${driver}: unknown option.*"${opt.split("=")[0]}" \\[ERR_INVALID_OPTION\\]\\n`),
    );
  }
  const size = await strata([
    "--root",
    join(dir, "o"),
    "--driver",
    "overlay",
    "--storage-opt",
    "overlay.size=ten",
    "info",
  ]);
  t.is(size.code, 125);
  t.regex(size.stderr, /Cannot parse overlay\.size: not a size "ten"/);
});

test("no raw errno text: save -o to a directory, load of a directory that is no archive", async (t) => {
  const { dir, g } = await vfsStore(t);
  await writeFile(join(dir, "l.tar"), await makeTar([{ name: "a", content: "a" }]));
  const imp = await strata([...g, "import", join(dir, "l.tar"), "x:1"]);
  t.is(imp.code, 0, imp.stderr);
  await mkdir(join(dir, "out"));
  const save = await strata([...g, "save", "x:1", "-o", join(dir, "out")]);
  t.is(save.code, 1);
  oneLine(t, save.stderr);
  t.regex(save.stderr, /^strata: Cannot save: is a directory, not a file ".*\/out" \[ERR_INVALID_ARGUMENT\]\n$/);
  t.notRegex(save.stderr, /EISDIR|tmp-/);
  const load = await strata([...g, "load", "-i", join(dir, "out")]);
  t.is(load.code, 1);
  oneLine(t, load.stderr);
  t.notRegex(load.stderr, /E[A-Z]{3,}:/);
});

test("--json errors are one JSON line on stderr, in docker's errorDetail shape", async (t) => {
  const { g } = await vfsStore(t);
  const r = await strata([...g, "--json", "inspect", "nope:1"]);
  t.is(r.code, 1);
  t.is(r.stdout, "");
  const e = JSON.parse(r.stderr) as { error: string; errorDetail: { message: string; code: string } };
  t.is(e.errorDetail.code, "ERR_IMAGE_NOT_FOUND");
  t.regex(e.error, /no such image "nope:1"/);
});

test("--version prints the version", async (t) => {
  const r = await strata(["--version"]);
  t.is(r.code, 0);
  t.regex(r.stdout, /^strata version \d+\.\d+\.\d+\n$/);
});
