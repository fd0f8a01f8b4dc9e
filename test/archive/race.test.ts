/**
 * Races: another process swaps directories inside the root for symlinks to
 * a host directory while strata applies, removes (whiteouts, replacement)
 * and exports. Whatever interleaving happens, no host file is created,
 * deleted or read. Rounds: STRATA_RACE_ROUNDS (default 3).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { readTar } from "../helpers/tar-reader.js";
import { applyLayer, exportTree } from "../../src/diff/index.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

const ROUNDS = Number(process.env.STRATA_RACE_ROUNDS ?? 3);

/** Starts a shell loop that swaps each `<dir>/<name>` for a symlink to `host` and back; stopped at teardown. */
function swapper(t: ExecutionContext, dir: string, names: string[], host: string): ChildProcess {
  const script = `cd "$1"; shift; host="$1"; shift
while :; do for n in "$@"; do
  mv "$n" "$n.swap" 2>/dev/null && { ln -s "$host" "$n" 2>/dev/null; rm -f "$n"; mv "$n.swap" "$n" 2>/dev/null; }
done; done`;
  // Its own process group: killing only bash would leave a running mv/ln to finish after the kill,
  // racing the next round or the temp dir's removal (ENOTEMPTY under load).
  const child = spawn("bash", ["-c", script, "swapper", dir, host, ...names], { stdio: "ignore", detached: true });
  t.teardown(() => stopSwapper(child));
  return child;
}

/** Kills the swapper's whole process group (the loop and whatever command it is running). */
function stopSwapper(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** A host directory with files whose names and content must survive. */
async function hostDir(base: string): Promise<{ host: string; check: () => Promise<string[]> }> {
  const host = join(base, "host");
  await mkdir(host);
  const names = Array.from({ length: 40 }, (_, i) => `h${i}`);
  for (const n of names) await writeFile(join(host, n), `host ${n}`);
  return {
    host,
    async check() {
      const now = (await readdir(host)).sort();
      const bad = now.filter((n) => !names.includes(n)).map((n) => `new: ${n}`);
      for (const n of names) {
        if (!now.includes(n)) bad.push(`deleted: ${n}`);
        else if ((await readFile(join(host, n), "utf8")) !== `host ${n}`) bad.push(`changed: ${n}`);
      }
      return bad;
    },
  };
}

const SUBS = Array.from({ length: 12 }, (_, i) => `s${i}`);

function tree(prefix: string, filesPerDir: number): Spec[] {
  const specs: Spec[] = [{ name: `${prefix}/` }];
  for (const s of SUBS) {
    specs.push({ name: `${prefix}/${s}/` });
    for (let i = 0; i < filesPerDir; i++) specs.push({ name: `${prefix}/${s}/f${i}`, content: `layer ${i}` });
  }
  return specs;
}

test("whiteout removal of a tree whose subdirectories are being swapped for host symlinks deletes no host file", async (t) => {
  const base = await tempDir(t);
  const { host, check } = await hostDir(base);
  const root = join(base, "root");
  await mkdir(root);
  const populate = await makeTar(tree("victim", 60));
  const whiteout = await makeTar([{ name: ".wh.victim", content: "" }]);
  for (let round = 0; round < ROUNDS; round++) {
    await applyLayer(root, chunks(populate));
    const child = swapper(t, join(root, "victim"), SUBS, host);
    await new Promise((r) => setTimeout(r, 20));
    await applyLayer(root, chunks(whiteout)).catch(() => {}); // an error is fine, a host change is not
    stopSwapper(child);
    await new Promise((r) => child.once("exit", r));
    t.deepEqual(await check(), [], `round ${round}`);
    await applyLayer(root, chunks(whiteout)); // clean up for the next round
  }
});

test("applying files under directories being swapped for host symlinks creates nothing on the host", async (t) => {
  const base = await tempDir(t);
  const { host, check } = await hostDir(base);
  const root = join(base, "root");
  await mkdir(root);
  await applyLayer(root, chunks(await makeTar(SUBS.map((s) => ({ name: `d/${s}/` })))));
  const layer = await makeTar(
    tree("d", 60)
      .slice(1 + SUBS.length)
      .concat(tree("d", 60)),
  );
  for (let round = 0; round < ROUNDS; round++) {
    const child = swapper(t, join(root, "d"), SUBS, host);
    await applyLayer(root, chunks(layer)).catch(() => {});
    stopSwapper(child);
    await new Promise((r) => child.once("exit", r));
    t.deepEqual(await check(), [], `round ${round}`);
  }
});

test("exporting a tree whose directories are being swapped for host symlinks never reads a host file", async (t) => {
  const base = await tempDir(t);
  const { host, check } = await hostDir(base);
  const root = join(base, "root");
  await mkdir(root);
  await applyLayer(root, chunks(await makeTar(tree("d", 30))));
  for (let round = 0; round < ROUNDS; round++) {
    const child = swapper(t, join(root, "d"), SUBS, host);
    const leaked: string[] = [];
    try {
      for await (const e of readTar(exportTree(root))) {
        const body = (await e.readAll()).toString();
        if (body.startsWith("host ")) leaked.push(e.header.name);
      }
    } catch {
      // a vanished name may end the export; leaking is what must not happen
    }
    stopSwapper(child);
    await new Promise((r) => child.once("exit", r));
    t.deepEqual(leaked, [], `round ${round}`);
    t.deepEqual(await check(), []);
  }
});
