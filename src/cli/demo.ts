/**
 * `strata demo`: the store's main job on a small real image, on every
 * driver that works on this machine, timing each step: load the image (a
 * docker-archive of the host's busybox, see `demo-image.ts`), create a
 * container, mount it, change it by running busybox's shell in it (chroot),
 * list the change as `docker diff` does, commit it as a new image, save that
 * as a docker-archive, unmount and remove. It uses the library API
 * (`openStore`) as any program would.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { NotSupportedError } from "../errors.js";
import { openStore, type Store } from "../store/index.js";
import { humanSize } from "../util/size.js";
import { DEMO_IMAGE, writeDemoArchive } from "./demo-image.js";
import { tabulate } from "./output.js";

const run = promisify(execFile);

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Where the demo's stores go (one per driver); default a new temporary directory. */
  root?: string;
  /** Drivers to show; default every built-in driver that works here. */
  drivers?: string[];
  /** Keep the stores (and their mounts) afterwards instead of removing them. */
  keep?: boolean;
}

/** Small pools for devmapper, so the demo does not make Docker's 100 GB sparse file. */
const DRIVER_OPTIONS: Record<string, Record<string, string>> = {
  devmapper: { "dm.loopdatasize": "2G", "dm.loopmetadatasize": "64M", "dm.basesize": "512M", "dm.fs": "ext4" },
};

/** What the demo changes inside the container, with busybox's own tools. */
const CHANGE_SCRIPT = [
  'echo "Changed by strata demo." > /etc/motd',
  "rm /var/log/boot.log",
  "mkdir -p /srv/app",
  "echo '{\"demo\":true}' > /srv/app/config.json",
  "ln -s /srv/app/config.json /etc/app.json",
  "uname -a > /srv/app/built-on",
].join(" && ");

/** The same change without a shell in the image (the fallback image has no mkdir or ln). */
async function changeByHand(path: string): Promise<void> {
  await writeFile(join(path, "etc/motd"), "Changed by strata demo.\n");
  await rm(join(path, "var/log/boot.log"));
  await mkdir(join(path, "srv/app"), { recursive: true });
  await writeFile(join(path, "srv/app/config.json"), '{"demo":true}\n');
  await symlink("/srv/app/config.json", join(path, "etc/app.json"));
}

/** Runs `fn`, logs its time, and records it under `step`. */
async function timed<T>(
  times: Map<string, number>,
  step: string,
  log: (s: string) => void,
  fn: () => Promise<T>,
  say: (v: T) => string,
): Promise<T> {
  const t0 = performance.now();
  const v = await fn();
  const ms = performance.now() - t0;
  times.set(step, ms);
  log(`  ${step.padEnd(8)} ${`${ms.toFixed(1)} ms`.padStart(10)}  ${say(v)}`);
  return v;
}

async function openFor(root: string, driver: string): Promise<Store | string> {
  try {
    return await openStore({ root, driver, options: DRIVER_OPTIONS[driver] ?? {} });
  } catch (err) {
    if (err instanceof NotSupportedError) return err.message;
    throw err;
  }
}

/** The steps on one driver; returns their times. */
async function onDriver(store: Store, work: string, archive: string, busybox: boolean, log: (s: string) => void) {
  const times = new Map<string, number>();
  const name = `demo-${process.pid}`;
  await timed(
    times,
    "load",
    log,
    () => store.images.load(archive),
    (r) => `loaded ${DEMO_IMAGE} (${r[0]?.id.slice(7, 19)})`,
  );
  await timed(
    times,
    "create",
    log,
    () => store.containers.create(name, DEMO_IMAGE),
    (c) => `container ${c.name} (${c.mountID.slice(0, 12)})`,
  );
  const path = await timed(
    times,
    "mount",
    log,
    () => store.containers.mount(name),
    (p) => `at ${p}`,
  );
  await timed(
    times,
    "change",
    log,
    async () => {
      if (busybox) await run("chroot", [path, "/bin/sh", "-c", CHANGE_SCRIPT]);
      else await changeByHand(path);
    },
    () =>
      busybox
        ? "ran the image's /bin/sh in it (chroot): edit, delete, add, link"
        : "edited, deleted, added, linked files",
  );
  const changes = await timed(
    times,
    "diff",
    log,
    () => store.containers.changes(name),
    (c) => `${c.length} changes:`,
  );
  for (const c of changes) log(`             ${c.kind} ${c.path}`);
  await timed(
    times,
    "commit",
    log,
    () => store.containers.commit(name, { tag: "strata-demo/busybox:changed", comment: "changed by strata demo" }),
    (r) => `image ${r.image.id.slice(7, 19)} (strata-demo/busybox:changed): the image's layer + the change`,
  );
  const out = join(work, `${store.driver.name}-saved.tar`);
  await timed(
    times,
    "save",
    log,
    () => store.images.save(["strata-demo/busybox:changed"], out),
    () => `docker-archive ${out}`,
  );
  log(`             ${humanSize((await stat(out)).size)}, two layers; \`docker load\` reads it`);
  await timed(
    times,
    "unmount",
    log,
    () => store.containers.unmount(name),
    () => "",
  );
  await timed(
    times,
    "rm",
    log,
    () => store.containers.remove(name),
    () => "container removed",
  );
  return times;
}

/** Runs the demo, printing each step through `log`. */
export async function runDemo(opts: DemoOptions, log: (s: string) => void): Promise<void> {
  const temp = opts.root === undefined;
  const work = opts.root ?? (await mkdtemp(join(tmpdir(), "strata-demo-")));
  await mkdir(work, { recursive: true });
  const archive = join(work, "busybox.tar");
  try {
    const what = await writeDemoArchive(archive);
    const busybox = what.startsWith("busybox");
    log(`strata demo: an image of ${what}, ${humanSize((await stat(archive)).size)} as a docker-archive (${archive})`);
    const { builtinDrivers } = await import("../drivers/index.js");
    const drivers = opts.drivers ?? builtinDrivers().names();
    const results = new Map<string, Map<string, number>>();
    for (const driver of drivers) {
      const root = join(work, driver);
      const store = await openFor(root, driver);
      if (typeof store === "string") {
        log(`\n${driver}: not available here (${store})`);
        continue;
      }
      log(`\n${driver}: store ${root}`);
      try {
        results.set(driver, await onDriver(store, work, archive, busybox, log));
      } finally {
        if (!opts.keep) await store.driver.cleanup();
        await store.close();
        if (!opts.keep) await rm(root, { recursive: true, force: true });
      }
    }
    const steps = ["load", "create", "mount", "change", "diff", "commit", "save", "unmount", "rm"];
    log("\nms per step (one run each; `strata bench` measures properly):");
    const lines = [["driver", ...steps].join("\t")];
    for (const [d, t] of results) lines.push([d, ...steps.map((s) => (t.get(s) ?? 0).toFixed(1))].join("\t"));
    for (const l of tabulate(lines)) log(l);
    if (opts.keep) log(`\nkept: ${work}`);
  } finally {
    if (temp && !opts.keep) await rm(work, { recursive: true, force: true });
    else if (!opts.keep) await rm(archive, { force: true });
  }
}
