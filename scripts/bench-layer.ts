/**
 * `npm run bench:layer`: container create + mount + unmount latency per
 * supported driver, through the layer store (init layer included), median
 * and min/max of N runs (STRATA_BENCH_RUNS, default 100). A program, not a test.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { tarStream } from "../src/archive/tar-writer.js";
import { header } from "../src/bench/corpus.js";
import { builtinDrivers } from "../src/drivers/index.js";
import { NotSupportedError } from "../src/errors.js";
import { LayerStore } from "../src/layer/index.js";

const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 100);
const base = process.env.STRATA_BENCH_DIR ?? tmpdir();

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const med = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return `median ${med.toFixed(2)} ms (min ${s[0]!.toFixed(2)}, max ${s[s.length - 1]!.toFixed(2)})`;
}

const reg = builtinDrivers();
console.log(`container create + mount + unmount, ${RUNS} runs, under ${base}`);
for (const name of reg.names()) {
  const root = await mkdtemp(join(base, `strata-bench-${name}-`));
  try {
    let driver;
    try {
      driver = await reg.get(name).factory({ root, options: {} });
    } catch (err) {
      if (err instanceof NotSupportedError) {
        console.log(`${name}: skipped (${err.message})`);
        continue;
      }
      throw err;
    }
    const store = await LayerStore.open(root, driver);
    try {
      const layer = await store.register(Readable.from(sampleLayer()), "", { ref: "bench" });
      const create: number[] = [];
      const mountUnmount: number[] = [];
      const total: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        await store.createRWLayer(`c${i}`, layer.chainID);
        const t1 = performance.now();
        await store.mount(`c${i}`);
        await store.unmount(`c${i}`);
        const t2 = performance.now();
        create.push(t1 - t0);
        mountUnmount.push(t2 - t1);
        total.push(t2 - t0);
      }
      console.log(`${name}: create ${stats(create)}; mount+unmount ${stats(mountUnmount)}; total ${stats(total)}`);
      for (let i = 0; i < RUNS; i++) await store.releaseRWLayer(`c${i}`);
    } finally {
      await store.close();
      await driver.cleanup();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** A tiny layer: a few directories and files, as an image's top layer might be. */
function sampleLayer(): Readable {
  const file = (name: string, text: string) => ({ header: header(name, "file", text.length), body: Buffer.from(text) });
  return tarStream(
    (async function* () {
      yield { header: header("etc/", "dir") };
      yield file("etc/hostname", "strata-bench\n");
      yield { header: header("bin/", "dir") };
      yield file("bin/hello", "#!/bin/sh\necho hello\n");
      yield { header: header("var/", "dir") };
      yield file("var/log", "old entries\n");
    })(),
  );
}
