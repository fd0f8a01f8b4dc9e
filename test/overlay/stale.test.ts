import { spawn } from "node:child_process";
import { access, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";
import { createOverlay, type OverlayDriver } from "../../src/drivers/overlay/index.js";
import { tempDir } from "../helpers/tmp.js";
import { mountCount } from "./helpers.js";

const driverModule = fileURLToPath(new URL("../../src/drivers/overlay/index.js", import.meta.url));
const gone = (p: string) =>
  access(p).then(
    () => false,
    () => true,
  );

/** Runs a node process that mounts layer "ctr" under `root` and dies by SIGKILL without unmounting. */
async function crashWhileMounted(root: string): Promise<void> {
  const script = `
    const { createOverlay } = await import(${JSON.stringify(driverModule)});
    const { writeFile } = await import("node:fs/promises");
    const d = await createOverlay({ root: ${JSON.stringify(root)}, options: {} });
    await d.create("img", "");
    await writeFile(d.home + "/img/diff/hello", "from the image");
    await d.createReadWrite("ctr", "img");
    const p = await d.get("ctr");
    await writeFile(p + "/written", "before the crash");
    process.kill(process.pid, "SIGKILL");
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const signal = await new Promise<NodeJS.Signals | null>((res) => child.on("close", (_code, sig) => res(sig)));
  if (signal !== "SIGKILL") throw new Error(`crash helper did not crash: ${stderr}`);
}

test("a mount left by a crashed process is found at start, reused by get and released by put", async (t) => {
  const root = await tempDir(t, "strata-ovl-stale-");
  await crashWhileMounted(root);
  const d = (await createOverlay({ root, options: {} })) as OverlayDriver;
  t.teardown(() => d.cleanup());
  const merged = join(d.home, "ctr", "merged");
  t.deepEqual(await d.mountedIds(), ["ctr"]);
  t.is(await mountCount(merged), 1);
  const p = await d.get("ctr");
  t.is(p, merged);
  t.is(await mountCount(merged), 1, "get on a mounted layer does not stack a second mount");
  t.is(await readFile(join(p, "written"), "utf8"), "before the crash");
  t.is(await readFile(join(p, "hello"), "utf8"), "from the image");
  t.is(await d.get("ctr"), merged, "get is idempotent");
  await d.put("ctr");
  t.is(await mountCount(merged), 0);
  t.true(await gone(merged));
  t.deepEqual(await d.mountedIds(), []);
});

test("put and remove succeed while the mount is still held in another mount namespace", async (t) => {
  const root = await tempDir(t, "strata-ovl-busy-");
  const d = (await createOverlay({ root, options: {} })) as OverlayDriver;
  t.teardown(() => d.cleanup());
  await d.create("img", "");
  await d.createReadWrite("ctr", "img");
  const p = await d.get("ctr");
  await writeFile(join(p, "f"), "x");
  // A process in a private copy of the mount table keeps the mount (and a cwd inside it) alive.
  const holder = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", `cd ${p} && exec sleep 60`], {
    stdio: "ignore",
  });
  t.teardown(() => {
    holder.kill("SIGKILL");
  });
  await new Promise((r) => setTimeout(r, 300));
  t.is(holder.exitCode, null, "the holder is running");
  await t.notThrowsAsync(d.put("ctr"));
  t.true(await gone(p));
  await t.notThrowsAsync(d.remove("ctr"));
  t.false(await d.exists("ctr"));
});

test("remove of a layer that is still mounted unmounts it first", async (t) => {
  const root = await tempDir(t, "strata-ovl-rm-");
  const d = (await createOverlay({ root, options: {} })) as OverlayDriver;
  t.teardown(() => d.cleanup());
  await d.create("img", "");
  await d.createReadWrite("ctr", "img");
  const p = await d.get("ctr");
  await d.remove("ctr");
  t.is(await mountCount(p), 0);
  t.false(await d.exists("ctr"));
  t.deepEqual(await d.mountedIds(), []);
});
