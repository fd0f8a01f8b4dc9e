/**
 * `npm run bench:overlay`: the overlay driver on its own (no layer store)
 * against the kernel and GNU tar, each run on its own fresh filesystem.
 *
 * 1. `apply debian`, `apply 60k` (the `bench:apply` corpus): the driver's
 *    `applyDiff` into a new layer, and strata's engine (`applyLayer`) into a
 *    plain directory, against `tar -xf` into a plain directory. The first
 *    two run in this process (no CLI start); the difference between them is
 *    the driver's own cost.
 * 2. `mount N lowers` (1, 10, 50, 128): `get` + `put` of a container layer
 *    on a chain of N layers against a bare mount(2) + umount2 of the same
 *    overlay; a sample is the mean of `--mount-ops` pairs.
 *
 * `strata bench --drivers overlay --peers docker --workloads commit`
 * compares diff and commit with dockerd's.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { applyLayer } from "../../diff/index.js";
import { createOverlay, type OverlayDriver } from "../../drivers/overlay/index.js";
import { Differ, Mounts } from "../../layer/index.js";
import { C, mount, mountFrom, umount2 } from "../../native.js";
import type { FreshFs } from "../fresh-fs.js";
import { type BenchCase, type Contender, commandContender } from "../side-by-side.js";
import { type Sample, timeCall } from "../timer.js";
import { programOptions, runCases, runProgram, wanted } from "./common.js";

const USAGE = `
npm run bench:overlay -- [options]

  --quick            the quick corpus (scripts/make-corpus.sh --quick), 2 rounds, 10 mount ops
  --rounds N         rounds per case (default 3)
  --fs ext4|xfs      filesystem made fresh for every run (default ext4)
  --cases a,b        run the cases whose names start with these ("apply", "mount 128", …)
  --corpus DIR       corpus directory (default /var/tmp/strata-corpus, or -quick)
  --mount-ops N      get+put (and mount+umount) pairs per sample (default 30)
`;

const DEPTHS = [1, 10, 50, 128];

/** A Differ over `d` with its mount holds kept in `dir` (closed with the driver), for a benchmark without a layer store. */
async function benchDiffer(d: OverlayDriver, dir: string): Promise<Differ> {
  const mounts = new Mounts(d, dir);
  await mounts.init();
  heldOpen.push(mounts);
  return new Differ(d, mounts);
}

/** Mount-hold directories open on the run's filesystem: closed before it is unmounted. */
const heldOpen: Mounts[] = [];

/** A contender that runs an overlay driver rooted on the run's filesystem, in this process. */
function driverContender(
  name: string,
  setup: (d: OverlayDriver, fs: FreshFs) => Promise<void>,
  run: (d: OverlayDriver, fs: FreshFs) => Promise<Sample>,
): Contender {
  let d: OverlayDriver | undefined;
  return {
    name,
    prepare: async (fs) => {
      d = (await createOverlay({ root: join(fs.path, "root"), options: {} })) as OverlayDriver;
      await setup(d, fs);
    },
    run: (fs) => run(d!, fs),
    finish: async () => {
      for (const m of heldOpen.splice(0)) await m.close();
      await d?.cleanup();
      d = undefined;
    },
  };
}

function applyCases(corpus: string): BenchCase[] {
  return [
    ["apply debian", "debian.tar"],
    ["apply 60k", "small.tar"],
  ].map(([name, file]) => {
    const tar = join(corpus, file!);
    let differ: Differ | undefined;
    return {
      name: name!,
      reference: "tar -xf",
      contenders: [
        driverContender(
          "overlay applyDiff",
          async (d, fs) => {
            await d.create("layer", "");
            differ = await benchDiffer(d, join(fs.path, "holds"));
          },
          async (_d, fs) =>
            (
              await timeCall(() => differ!.applyDiff("layer", "", createReadStream(tar)), {
                syncPath: fs.path,
              })
            ).sample,
        ),
        {
          name: "applyLayer, plain dir",
          prepare: (fs) => mkdir(join(fs.path, "x")),
          run: async (fs) =>
            (await timeCall(() => applyLayer(join(fs.path, "x"), createReadStream(tar)), { syncPath: fs.path })).sample,
        },
        commandContender(
          "tar -xf",
          (fs) => ["tar", ["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xf", tar, "-C", join(fs.path, "x")]],
          { prepare: (fs) => mkdir(join(fs.path, "x")) },
        ),
      ],
    };
  });
}

/** A chain of `depth` one-file layers and a container layer `rw` on top. */
async function chain(d: OverlayDriver, depth: number): Promise<void> {
  let parent = "";
  for (let i = 0; i < depth; i++) {
    await d.create(`m${i}`, parent);
    await writeFile(join(d.home, `m${i}`, "diff", `f${i}`), String(i));
    parent = `m${i}`;
  }
  await d.createReadWrite("rw", parent);
}

/** Mean per pair of `ops` runs of `pair`. */
async function perOp(ops: number, pair: () => Promise<void>): Promise<Sample> {
  const { sample } = await timeCall(async () => {
    for (let i = 0; i < ops; i++) await pair();
  });
  return { wall: sample.wall / ops, synced: sample.synced / ops, user: sample.user / ops, sys: sample.sys / ops };
}

function mountCases(ops: number): BenchCase[] {
  return DEPTHS.map((depth) => ({
    name: `mount ${depth} lowers`,
    reference: "mount(2) + umount2",
    contenders: [
      driverContender(
        "get + put",
        (d) => chain(d, depth),
        (d) =>
          perOp(ops, async () => {
            await d.get("rw");
            await d.put("rw");
          }),
      ),
      driverContender(
        "mount(2) + umount2",
        (d) => chain(d, depth),
        async (d) => {
          // The same overlay made by hand: l/ short links, relative to the home when absolute paths overflow a page.
          const target = join(d.home, "rw", "bare");
          await mkdir(target);
          const lower = await readFile(join(d.home, "rw", "lower"), "utf8");
          const abs = `lowerdir=${lower
            .split(":")
            .map((l) => join(d.home, l))
            .join(":")},upperdir=${d.home}/rw/diff,workdir=${d.home}/rw/work`;
          const bare = () =>
            abs.length < 4096
              ? mount("overlay", target, "overlay", 0, abs)
              : mountFrom(
                  d.home,
                  "overlay",
                  "rw/bare",
                  "overlay",
                  0,
                  `lowerdir=${lower},upperdir=rw/diff,workdir=rw/work`,
                );
          return perOp(ops, async () => {
            await bare();
            await umount2(target, C.MNT_DETACH);
          });
        },
      ),
    ],
  }));
}

async function main(): Promise<void> {
  const o = programOptions(
    USAGE,
    { corpus: { type: "string" }, "mount-ops": { type: "string" } },
    { rounds: 3, quickRounds: 2 },
  );
  const corpus =
    (o.extra.corpus as string | undefined) ?? (o.quick ? "/var/tmp/strata-corpus-quick" : "/var/tmp/strata-corpus");
  for (const f of ["debian.tar", "small.tar"])
    await stat(join(corpus, f)).catch(() => {
      throw new Error(`Cannot run bench:overlay: ${join(corpus, f)} is missing, run bash scripts/make-corpus.sh`);
    });
  const ops = Number(o.extra["mount-ops"] ?? (o.quick ? 10 : 30));
  const cases = [...applyCases(corpus), ...mountCases(ops)].filter((c) => wanted(o, c.name));
  console.log(`# bench:overlay — corpus ${corpus}; mount samples are means of ${ops} pairs`);
  await runCases("the overlay driver against GNU tar and the bare kernel mount", cases, o);
}

runProgram(main);
