/**
 * Progress of pull, push, load and save: bars with sizes, totals and rates
 * on a terminal (run under script(1) for a pty), plain lines without one,
 * JSON lines with --json — always on stderr, with only the result on stdout.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { CLI, strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { startRegistry } from "../image/peers.js";

const run = promisify(execFile);

/** Runs strata on a pseudo-terminal; returns what the terminal showed (stdout and stderr together). */
async function onTerminal(args: string[]): Promise<string> {
  const cmd = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(" ");
  const { stdout } = await run("script", ["-qec", cmd, "/dev/null"], { maxBuffer: 1 << 26 });
  return stdout;
}

test("pull, push, load and save show bars with totals and rates on a terminal, lines or JSON otherwise", async (t) => {
  const reg = await startRegistry(t);
  const dir = await tempDir(t, "strata-progress-");
  const a = ["--root", join(dir, "a"), "--driver", "vfs"];
  const b = ["--root", join(dir, "b"), "--driver", "vfs"];
  // Random bytes: gzip cannot shrink them, so every transfer moves about 24 MB.
  await writeFile(join(dir, "big.tar"), await makeTar([{ name: "big", content: randomBytes(24 << 20) }]));
  t.is((await strata([...a, "import", join(dir, "big.tar"), `${reg.addr}/p/big:1`])).code, 0);
  const bars = /\d+(\.\d+)?[kM]B\/\d+(\.\d+)?[kM]B \d+(\.\d+)?[kMG]?B\/s/;

  const push = await onTerminal([...a, "push", `${reg.addr}/p/big:1`]);
  t.regex(push, bars, `push: ${push}`);
  t.regex(push, /1: digest: sha256:/);
  const pull = await onTerminal([...b, "pull", `${reg.addr}/p/big:1`]);
  t.regex(pull, bars, `pull: ${pull}`);
  t.regex(pull, /Pull complete/);
  const save = await onTerminal([...b, "save", "-o", join(dir, "big-saved.tar"), `${reg.addr}/p/big:1`]);
  t.regex(save, /Saving \[=*>? *\] \d+(\.\d+)?MB\/\d+(\.\d+)?MB \d/, `save: ${save}`);
  const c = ["--root", join(dir, "c"), "--driver", "vfs"];
  const load = await onTerminal([...c, "load", "-i", join(dir, "big-saved.tar")]);
  t.regex(load, /Loading \[=*>? *\] \d+(\.\d+)?MB\/\d+(\.\d+)?MB .*layers/, `load: ${load}`);

  // Without a terminal: plain lines on stderr, only the result on stdout.
  const plain = await strata([...b, "load", "-i", join(dir, "big-saved.tar")]);
  t.is(plain.stdout, `Loaded image: ${reg.addr}/p/big:1\n`);
  t.regex(plain.stderr, /^[0-9a-f]{12}: (Already exists|Loaded)/m);
  t.notRegex(plain.stderr, /\x1b\[/, "no terminal escapes in plain lines");
  const pulled = await strata([...a, "pull", `${reg.addr}/p/big:1`]);
  t.regex(pulled.stdout, /^Digest: sha256:[0-9a-f]{64}\nStatus: .*\n.*p\/big:1\n$/);

  // --json: the result is one document on stdout, progress JSON lines on stderr.
  const json = await strata([...b, "--json", "push", `${reg.addr}/p/big:1`, `${reg.addr}/p/copy:2`]);
  const res = JSON.parse(json.stdout) as { Digest: string; Tag: string; Id: string };
  t.is(res.Tag, "2");
  t.regex(res.Digest, /^sha256:/);
  const events = json.stderr
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { status: string; id: string });
  t.true(events.some((e) => e.status === "Pushing"));
  t.true(events.every((e) => typeof e.status === "string"));
});
