/**
 * `npm run bench:overlay`: the overlay driver side by side with reference
 * tools, in one run, printing figures and ratios.
 *
 * 1. Apply: a Debian layer (the peer lab's debootstrap rootfs when present,
 *    else a tar of the host's /usr/share/doc and /etc) and a 60,000
 *    small-file layer, into an overlay layer (`applyDiff`) vs GNU tar
 *    extracting the same file into a plain directory. Target ratio ≤ 1.05.
 * 2. Mount + unmount (`get` + `put`) of layers with 1, 10, 50, 128 lowers
 *    vs the bare mount(2)/umount2 of the same overlay.
 * 3. With a dockerd from the peer lab: `changes` and diff+apply ("commit")
 *    of a container with 10,000 changed files vs `docker diff` and
 *    `docker commit` of the same change (target ≤ 0.5× Docker).
 *
 * Environment: BENCH_RUNS (default 3), BENCH_MOUNT_RUNS (default 30),
 * BENCH_DIR (default /var/tmp), BENCH_PARTS (default "apply,mount,docker").
 * The apply table also shows strata's own engine (`applyLayer`) into a
 * plain dir: the overlay driver's cost over the engine it uses.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { applyLayer } from "../diff/index.js";
import { createOverlay, type OverlayDriver } from "../drivers/overlay/index.js";
import { Differ, Mounts } from "../layer/index.js";
import { C, mount, mountFrom, umount2 } from "../native.js";
import { benchDocker } from "./overlay-docker.js";

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MOUNT_RUNS = Number(process.env.BENCH_MOUNT_RUNS ?? 30);
const BASE = process.env.BENCH_DIR ?? "/var/tmp";
const DEBIAN_TAR = "/tmp/peer-artifacts/base-rootfs.tar";

/** A Differ over `d` with its mount holds kept in `<work>/holds`, for a benchmark without a layer store. */
export async function benchDiffer(d: OverlayDriver, work: string): Promise<Differ> {
  const mounts = new Mounts(d, join(work, "holds"));
  await mounts.init();
  return new Differ(d, mounts);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (n: number) => `${n.toFixed(n < 10 ? 2 : 0)} ms`;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Drops the page cache of written data so each run starts alike (reads stay cached). */
async function settle(): Promise<void> {
  await run("sync");
}

async function makeLayers(work: string): Promise<Array<{ name: string; tar: string }>> {
  let debian = DEBIAN_TAR;
  let debianName = "Debian bookworm minbase rootfs (peer lab)";
  if (!existsSync(debian)) {
    debian = join(work, "debian-like.tar");
    debianName = "host /etc + /usr/share/doc (Debian-like)";
    await run("tar", ["--numeric-owner", "--xattrs", "-C", "/", "-cf", debian, "etc", "usr/share/doc"]);
  }
  const small = join(work, "small-files");
  for (let d = 0; d < 600; d++) {
    const dir = join(small, `d${String(d).padStart(3, "0")}`);
    await mkdir(dir, { recursive: true });
    await Promise.all(
      Array.from({ length: 100 }, (_, f) =>
        writeFile(join(dir, `f${f}`), Buffer.alloc(64 + ((d * 100 + f) % 1900), f)),
      ),
    );
  }
  const smallTar = join(work, "small-60k.tar");
  await run("tar", ["--numeric-owner", "-C", small, "-cf", smallTar, "."]);
  await rm(small, { recursive: true, force: true });
  return [
    { name: debianName, tar: debian },
    { name: "60,000 small files (64 B – 2 KiB)", tar: smallTar },
  ];
}

async function benchApply(d: OverlayDriver, work: string): Promise<void> {
  console.log("\n## Apply a layer: overlay applyDiff vs GNU tar -x into a plain dir");
  console.log(
    "| layer | GNU tar (median) | overlay applyDiff (median) | ratio | strata applyLayer, plain dir | overlay / plain |\n|---|---|---|---|---|---|",
  );
  const differ = await benchDiffer(d, work);
  for (const layer of await makeLayers(work)) {
    const tarTimes: number[] = [];
    const ovlTimes: number[] = [];
    const engineTimes: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const plain = join(work, `plain-${i}`);
      await mkdir(plain);
      await settle();
      tarTimes.push(
        await time(() =>
          run("tar", ["--numeric-owner", "--xattrs", "--xattrs-include=*", "-p", "-C", plain, "-xf", layer.tar]),
        ),
      );
      await rm(plain, { recursive: true, force: true });
      const id = `apply-${i}`;
      await d.create(id, "");
      await settle();
      ovlTimes.push(await time(() => differ.applyDiff(id, "", createReadStream(layer.tar))));
      await d.remove(id);
      const engineDir = join(work, `engine-${i}`);
      await mkdir(engineDir);
      await settle();
      engineTimes.push(await time(() => applyLayer(engineDir, createReadStream(layer.tar))));
      await rm(engineDir, { recursive: true, force: true });
    }
    const [a, b, c] = [median(tarTimes), median(ovlTimes), median(engineTimes)];
    console.log(`| ${layer.name} | ${ms(a)} | ${ms(b)} | ${(b / a).toFixed(2)} | ${ms(c)} | ${(b / c).toFixed(2)} |`);
  }
}

async function benchMount(d: OverlayDriver): Promise<void> {
  console.log("\n## Mount + unmount: get + put vs bare mount(2) + umount2 of the same overlay");
  console.log("| lowers | method | bare (median) | get+put (median) | ratio |\n|---|---|---|---|---|");
  const depths = [1, 10, 50, 128];
  let parent = "";
  for (let i = 0; i <= Math.max(...depths); i++) {
    const id = `m${i}`;
    await d.create(id, parent);
    await writeFile(join(d.home, id, "diff", `f${i}`), String(i));
    parent = id;
  }
  for (const depth of depths) {
    const id = `rw${depth}`;
    await d.createReadWrite(id, `m${depth - 1}`);
    const target = join(d.home, id, "bare");
    await mkdir(target);
    // The same overlay made by hand: l/ short links, relative from the home when absolute paths overflow a page.
    const lower = await readFile(join(d.home, id, "lower"), "utf8");
    const rel = `lowerdir=${lower},upperdir=${id}/diff,workdir=${id}/work`;
    const abs = `lowerdir=${lower
      .split(":")
      .map((l) => join(d.home, l))
      .join(":")},upperdir=${d.home}/${id}/diff,workdir=${d.home}/${id}/work`;
    const bareMount = () =>
      abs.length < 4096
        ? mount("overlay", target, "overlay", 0, abs)
        : mountFrom(d.home, "overlay", `${id}/bare`, "overlay", 0, rel);
    const bare: number[] = [];
    const driver: number[] = [];
    for (let i = 0; i < MOUNT_RUNS; i++) {
      bare.push(
        await time(async () => {
          await bareMount();
          await umount2(target, C.MNT_DETACH);
        }),
      );
      driver.push(
        await time(async () => {
          await d.get(id);
          await d.put(id);
        }),
      );
    }
    const [b, g] = [median(bare), median(driver)];
    console.log(`| ${depth} | ${d.lastMountMethod.get(id)} | ${ms(b)} | ${ms(g)} | ${(g / b).toFixed(2)} |`);
  }
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(BASE, "strata-bench-ovl-"));
  const d = (await createOverlay({ root: join(work, "root"), options: {} })) as OverlayDriver;
  try {
    console.log(`# overlay benchmark (${new Date().toISOString()}, runs=${RUNS}, mount runs=${MOUNT_RUNS})`);
    console.log((await d.status()).map(([k, v]) => `- ${k}: ${v}`).join("\n"));
    const parts = (process.env.BENCH_PARTS ?? "apply,mount,docker").split(",");
    if (parts.includes("apply")) await benchApply(d, work);
    if (parts.includes("mount")) await benchMount(d);
    if (parts.includes("docker")) await benchDocker(d, await benchDiffer(d, work));
  } finally {
    await d.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
