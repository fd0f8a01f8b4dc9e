/**
 * Crash safety: `strata layer apply` and `strata commit` are SIGKILLed at
 * random moments; afterwards `strata check` (whose store open runs the
 * automatic recovery) must report a consistent store, except for the
 * pending import ref of a killed commit (which `check --repair` clears), and
 * no partial layer may ever be listed. Runs: STRATA_CRASH_RUNS (default 24, half each; more for a soak).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import test from "ava";
import { builtinDrivers } from "../../src/drivers/index.js";
import { type Digest, initPaths, LayerStore } from "../../src/layer/index.js";
import { CLI, strata } from "../helpers/cli.js";
import { driverTestArgs, driverTestOptions, supportedDrivers } from "../helpers/drivers.js";
import { makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

const ALL_RUNS = Number(process.env.STRATA_CRASH_RUNS ?? 24);
/** devmapper: each CLI start opens the pool and checks the base device (~1 s), so fewer runs by default. */
const DEVMAPPER_RUNS = Number(process.env.STRATA_CRASH_RUNS ?? 10);
const drivers = await supportedDrivers();

/** A small deterministic PRNG, so a failing schedule can be replayed from its seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Regular files under `dir`, leaving out the init layer's (inside image layers on devmapper). */
async function countFiles(dir: string): Promise<number> {
  const init = initPaths();
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const rel = `/${relative(dir, join(e.parentPath, e.name))}`;
    if (e.isFile() && !init.has(rel)) n++;
  }
  return n;
}

/**
 * Starts `strata ARGS` and SIGKILLs it `afterMs` after its operation began
 * (its intent record appeared), so kills land inside the operation rather
 * than in process start-up; a process that finishes first is not killed.
 */
function runAndKill(args: string[], intents: string, afterMs: number): Promise<void> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: "ignore" });
    let timer: NodeJS.Timeout | undefined;
    const poll = setInterval(() => {
      readdir(intents)
        .then((names) => {
          if (names.length > 0 && !timer) {
            clearInterval(poll);
            timer = setTimeout(() => p.kill("SIGKILL"), afterMs);
          }
        })
        .catch(() => {});
    }, 2);
    p.on("exit", () => {
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      resolve();
    });
  });
}

for (const name of drivers) {
  const RUNS = name === "devmapper" ? DEVMAPPER_RUNS : ALL_RUNS;
  test(`${name}: SIGKILL during layer apply and commit never leaves a partial layer (${RUNS} runs)`, async (t) => {
    const seed = Number(process.env.STRATA_CRASH_SEED ?? Date.now() % 100000);
    t.log(`seed ${seed} (STRATA_CRASH_SEED to replay)`);
    const rand = prng(seed);
    const dir = await tempDir(t, "strata-crash-");
    const root = join(dir, "root");
    const g = ["--root", root, "--driver", name, ...driverTestArgs(name)];
    const files: Spec[] = [];
    for (let d = 0; d < 20; d++) {
      files.push({ name: `d${d}/` });
      for (let f = 0; f < 40; f++) files.push({ name: `d${d}/f${f}`, content: `${d}/${f}`.repeat(20) });
    }
    const bigTar = join(dir, "big.tar");
    const tarBytes = await makeTar(files);
    await writeFile(bigTar, tarBytes);
    const bigDiff: Digest = `sha256:${createHash("sha256").update(tarBytes).digest("hex")}`;
    const expectedFiles = files.filter((f) => f.content !== undefined).length;
    const baseTar = join(dir, "base.tar");
    await writeFile(baseTar, await makeTar([{ name: "etc/" }, { name: "etc/os", content: "crash-test" }]));
    const base = (await strata([...g, "layer", "apply", baseTar])).stdout.trim();
    t.regex(base, /^sha256:/);

    // Time process start-up and one uninterrupted apply, so kills land across the whole operation.
    let start = Date.now();
    await strata([...g, "layer", "ls"]);
    const startupMs = (Date.now() - start) * 0.8;
    start = Date.now();
    const first = await strata([...g, "layer", "apply", bigTar]);
    t.is(first.code, 0, first.stderr);
    const applyMs = Date.now() - start;
    await strata([...g, "layer", "rm", first.stdout.trim()]);

    const intents = join(root, "layerdb", name, "intents");
    let interrupted = 0;
    for (let run = 0; run < RUNS; run++) {
      const commitRun = run % 2 === 1;
      if (commitRun) {
        const cname = `c${run}`;
        t.is((await strata([...g, "create", cname, base])).code, 0);
        const mp = (await strata([...g, "mount", cname])).stdout.trim();
        for (let i = 0; i < 200; i++) await writeFile(join(mp, `file${i}`), String(i).repeat(100));
        await strata([...g, "unmount", cname]);
        start = Date.now();
        await runAndKill([...g, "commit", cname, `img${run}`], intents, rand() * Math.max(applyMs - startupMs, 300));
      } else {
        await runAndKill([...g, "layer", "apply", bigTar], intents, rand() * (applyMs - startupMs) * 1.1);
      }
      if ((await readdir(intents)).length > 0) interrupted++;
      const chk = await strata([...g, "--json", "check"]);
      if (chk.code !== 0) {
        // A commit killed between registering its layer and recording its image leaves the layers held by
        // the dead process's pending import ref: check reports exactly that, and --repair clears it.
        const kinds = (JSON.parse(chk.stdout) as Array<{ kind: string }>).map((p) => p.kind);
        t.true(
          commitRun && kinds.length > 0 && kinds.every((k) => k === "dead-import-ref"),
          `run ${run}: check after the crash: ${chk.stdout}${chk.stderr}`,
        );
        t.is((await strata([...g, "check", "--repair"])).code, 0);
      }
      const again = await strata([...g, "check"]);
      t.regex(again.stdout, /store is consistent/, `run ${run}: consistent after one recovery`);
    }

    t.log(`${interrupted} of ${RUNS} runs were killed mid-operation`);
    if (RUNS >= 20) t.true(interrupted > 0, "some kills landed in the middle of an operation");

    // Every layer that is listed is complete.
    const driver = await builtinDrivers()
      .get(name)
      .factory({ root, options: driverTestOptions(name) });
    const store = await LayerStore.open(root, driver);
    try {
      // Killed commits' scratch tars live under the store's tmp/; opening the store (recovery) removed them.
      t.deepEqual(await readdir(join(store.db.dir, "tmp")), [], "no scratch left by killed commits");
      for (const l of await store.layers()) {
        const path = await store.mounts.acquire(l.cacheID);
        try {
          const n = await countFiles(path);
          if (l.diffID === bigDiff) t.is(n, expectedFiles, "a listed apply layer has every file");
          else if (l.parent) t.is(n, 201, "a listed commit layer has every file");
        } finally {
          await store.mounts.release(l.cacheID);
        }
      }
    } finally {
      await store.close();
      await driver.cleanup();
    }
  });
}
