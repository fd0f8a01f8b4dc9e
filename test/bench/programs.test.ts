/**
 * The standalone benchmark programs, run as a user runs them with tiny
 * inputs: each prints its table under the filesystem line, with a ratio
 * against the reference measured in the same run, and leaves no fresh
 * filesystem behind.
 */
import { execFile, spawn } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { tempDir } from "../helpers/tmp.js";

const run = promisify(execFile);
const program = (name: string) => fileURLToPath(new URL(`../../src/bench/programs/${name}.js`, import.meta.url));

/** Runs a program; resolves with its pid, exit code and output (a non-zero exit is a result, not an error). */
function bench(name: string, args: string[]): Promise<{ pid: number; code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [program(name), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ pid: child.pid!, code: code ?? -1, stdout, stderr }));
  });
}

/** The fresh filesystems (directories, mounts, loop devices) process `pid` left behind. */
async function leftoversOf(pid: number): Promise<string[]> {
  const mark = `/strata-freshfs-${pid}-`;
  const dirs = (await readdir("/var/tmp")).filter((n) => `/${n}`.startsWith(mark));
  const mounts = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").filter((l) => l.includes(mark));
  const loops = [];
  for (const dev of (await readdir("/sys/block")).filter((d) => d.startsWith("loop"))) {
    const backing = await readFile(`/sys/block/${dev}/loop/backing_file`, "utf8").catch(() => "");
    if (backing.includes(mark)) loops.push(dev);
  }
  return [...dirs, ...mounts, ...loops];
}

/** A tiny corpus in the layout of scripts/make-corpus.sh. */
async function tinyCorpus(dir: string): Promise<string> {
  const corpus = join(dir, "corpus");
  await mkdir(corpus);
  for (const [name, files] of [
    ["debian", 20],
    ["small", 200],
    ["large", 2],
  ] as const) {
    const tree = join(dir, name);
    await mkdir(join(tree, "d"), { recursive: true });
    for (let i = 0; i < files; i++)
      await writeFile(join(tree, "d", `f${i}`), `${name} ${i}\n`.repeat(name === "large" ? 10_000 : 4));
    await run("tar", ["--numeric-owner", "-cf", join(corpus, `${name}.tar`), "-C", tree, "."]);
    await run("sh", ["-c", `gzip -c '${join(corpus, `${name}.tar`)}' > '${join(corpus, `${name}.tar.gz`)}'`]);
  }
  return corpus;
}

test.serial(
  "bench:apply times strata against tar, find and tar -cf on fresh filesystems and prints the ratios",
  async (t) => {
    const corpus = await tinyCorpus(await tempDir(t, "strata-bench-prog-", "/var/tmp"));
    const r = await bench("apply", ["--corpus", corpus, "--rounds", "2", "--cases", "apply 60k,changes,export"]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /Filesystem: ext4 \(mkfs\.ext4 defaults, journal on\), made fresh for every timed run/);
    t.regex(r.stdout, /Medians of 2 rounds, the order alternating/);
    for (const [name, strata, ref] of [
      ["apply 60k", "strata layer apply", "tar -xf"],
      ["apply 60k .gz", "strata layer apply", "tar -xzf"],
      ["changes 60k", "strata diff \\(vfs\\)", "find A B"],
      ["export 60k", "strata layer export \\(vfs\\)", "tar -cf"],
    ]) {
      t.regex(r.stdout, new RegExp(`\\| ${name} \\| ${strata} \\|( [0-9.]+ \\|){4} [0-9.]+× \\| [0-9.]+× \\|`), name);
      t.regex(r.stdout, new RegExp(`\\| ${name} \\| ${ref} \\(reference\\) \\|`), `${name} reference`);
    }
    t.notRegex(r.stdout, /apply debian/, "--cases narrows the cases");
    t.deepEqual(await leftoversOf(r.pid), [], "no fresh filesystem left");
  },
);

test.serial("bench:startup compares whole commands with node -e 0", async (t) => {
  const r = await bench("startup", ["--rounds", "1", "--cases", "help"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /\| help \| strata --help \|( [0-9.]+ \|){4} [0-9.]+× \|/);
  t.regex(r.stdout, /\| help \| node -e 0 \(reference\) \|/);
  t.deepEqual(await leftoversOf(r.pid), []);
});

test("the programs refuse a bad option with one line and exit 2", async (t) => {
  const a = await bench("apply", ["--fs", "btrfs"]);
  t.is(a.code, 2);
  t.regex(a.stderr, /^Cannot run the benchmark: --fs must be one of ext4, xfs "btrfs" \[ERR_INVALID_OPTION\]\n$/);
  const b = await bench("overlay", ["--rounds", "0"]);
  t.is(b.code, 2);
  t.regex(b.stderr, /--rounds must be 1\.\.100/);
  const c = await bench("images", ["--nope"]);
  t.is(c.code, 2);
  t.regex(c.stderr, /Unknown option '--nope'/);
});

test("bench:apply says how to build a missing corpus", async (t) => {
  const dir = await tempDir(t);
  const r = await bench("apply", ["--corpus", dir]);
  t.is(r.code, 1);
  t.regex(r.stderr, /debian\.tar\(\.gz\) is missing, run bash scripts\/make-corpus\.sh first/);
});
