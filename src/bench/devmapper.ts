/**
 * `npm run bench:devmapper`: devmapper against the other drivers in one run,
 * through the layer store (init content included):
 * - apply of a Debian-like layer (the peer lab's debootstrap minbase rootfs tar);
 * - container create + mount + unmount latency, median of N;
 * - disk space used by the store after the image and 20 containers (du of
 *   allocated blocks, one filesystem: sparse pool files count what they hold).
 * Prints figures and ratios to vfs. A program, not a test.
 *
 * Environment: STRATA_BENCH_LAYER (default /tmp/peer-artifacts/base-rootfs.tar),
 * STRATA_BENCH_DIR (default os.tmpdir()), STRATA_BENCH_RUNS (default 100),
 * STRATA_BENCH_CONTAINERS (default 20), STRATA_BENCH_DRIVERS (default
 * "devmapper,overlay,vfs"), STRATA_BENCH_DM_OPTS ("k=v,k=v"; default Docker's
 * defaults: 100G sparse data file, 10G xfs base).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { builtinDrivers } from "../drivers/index.js";
import { NotSupportedError } from "../errors.js";
import type { Driver } from "../graphdriver/driver.js";
import { LayerStore } from "../layer/index.js";

const run = promisify(execFile);
const LAYER = process.env.STRATA_BENCH_LAYER ?? "/tmp/peer-artifacts/base-rootfs.tar";
const BASE = process.env.STRATA_BENCH_DIR ?? tmpdir();
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 100);
const CONTAINERS = Number(process.env.STRATA_BENCH_CONTAINERS ?? 20);
const DRIVERS = (process.env.STRATA_BENCH_DRIVERS ?? "devmapper,overlay,vfs").split(",").filter(Boolean);

function driverOptions(name: string): Record<string, string> {
  if (name !== "devmapper" || !process.env.STRATA_BENCH_DM_OPTS) return {};
  return Object.fromEntries(process.env.STRATA_BENCH_DM_OPTS.split(",").map((kv) => kv.split("=") as [string, string]));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function ms(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Allocated bytes under `dir`, staying on its filesystem (mounts inside are skipped). */
async function du(dir: string): Promise<number> {
  const { stdout } = await run("du", ["-s", "-x", "--block-size=1", dir]);
  return Number(stdout.split(/\s/)[0]);
}

interface Result {
  driver: string;
  applyMs: number;
  latencyMs: number;
  imageBytes: number;
  withContainersBytes: number;
}

async function bench(name: string): Promise<Result | null> {
  const root = await mkdtemp(join(BASE, `strata-bench-dm-${name}-`));
  let driver: Driver | undefined;
  try {
    try {
      driver = await builtinDrivers()
        .get(name)
        .factory({ root, options: driverOptions(name) });
    } catch (err) {
      if (err instanceof NotSupportedError) {
        console.log(`${name}: skipped (${err.message})`);
        return null;
      }
      throw err;
    }
    const store = await LayerStore.open(root, driver);
    try {
      let chainID = "";
      const applyMs = await ms(async () => {
        const info = await store.register(createReadStream(LAYER), "", { ref: "image:debian" });
        chainID = info.chainID;
      });
      await run("sync");
      const imageBytes = await du(root);

      const lat: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        lat.push(
          await ms(async () => {
            await store.createRWLayer(`lat${i}`, chainID as `sha256:${string}`);
            await store.mount(`lat${i}`);
            await store.unmount(`lat${i}`);
          }),
        );
        await store.releaseRWLayer(`lat${i}`);
      }

      for (let i = 0; i < CONTAINERS; i++) {
        await store.createRWLayer(`c${i}`, chainID as `sha256:${string}`);
        const p = await store.mount(`c${i}`);
        await writeFile(join(p, "etc", `bench-${i}`), `container ${i}\n`);
        await store.unmount(`c${i}`);
      }
      await run("sync");
      const withContainersBytes = await du(root);
      return { driver: name, applyMs, latencyMs: median(lat), imageBytes, withContainersBytes };
    } finally {
      await store.close();
    }
  } finally {
    await driver?.cleanup();
    await rm(root, { recursive: true, force: true });
  }
}

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

if (!existsSync(LAYER)) {
  console.error(
    `bench:devmapper: no layer at ${LAYER}; build it with /work/shared/peers/make-base-image.sh or set STRATA_BENCH_LAYER`,
  );
  process.exit(2);
}
console.log(
  `layer ${LAYER} (${mb((await stat(LAYER)).size)}), ${RUNS} latency runs, ${CONTAINERS} containers, under ${BASE}`,
);
const results: Result[] = [];
const ratio = (a: number, b: number | undefined) => (b ? ` (${(a / b).toFixed(2)}x vfs)` : "");
for (const name of DRIVERS) {
  const r = await bench(name);
  if (!r) continue;
  results.push(r);
  console.log(
    `${r.driver}: apply ${r.applyMs.toFixed(0)} ms, create+mount+unmount median ${r.latencyMs.toFixed(2)} ms`,
  );
}
const ref = results.find((r) => r.driver === "vfs");
for (const r of results) {
  console.log(`${r.driver}:`);
  console.log(`  apply of the layer:              ${r.applyMs.toFixed(0)} ms${ratio(r.applyMs, ref?.applyMs)}`);
  console.log(`  create+mount+unmount (median):   ${r.latencyMs.toFixed(2)} ms${ratio(r.latencyMs, ref?.latencyMs)}`);
  console.log(`  disk used, image only:           ${mb(r.imageBytes)}`);
  console.log(
    `  disk used, image + ${CONTAINERS} containers: ${mb(r.withContainersBytes)}${ratio(r.withContainersBytes, ref?.withContainersBytes)} (+${mb(r.withContainersBytes - r.imageBytes)})`,
  );
}
