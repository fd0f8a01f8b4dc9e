/**
 * Issue 19 item 1: a layer nested deeper than PATH_MAX must apply, mount and
 * be removed, and a removal that cannot finish must never brick the store:
 * its leftover waits for `check --repair` while every other command works.
 */
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { C, mount, umount2 } from "../../src/native.js";
import { mountsUnder } from "../../src/util/mountinfo.js";
import { writeFixtureLayout } from "../image/fixture.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { cliStore, deepLayer, lastLine } from "./helpers.js";

const DEPTH = Number(process.env.STRATA_DEEP_LAYER_DEPTH ?? 3000);

/** The commands that must keep working whatever a removal left behind. */
async function everyCommandWorks(t: import("ava").ExecutionContext, s: Awaited<ReturnType<typeof cliStore>>) {
  const layout = await tempDir(t, "strata-hostile-oci-");
  await writeFixtureLayout(layout, "v1");
  await s.ok("images");
  await s.ok("ps");
  await s.ok("layer", "ls");
  await s.ok("load", `${layout}:v1`);
  await s.ok("images");
  await s.ok("prune");
  await s.ok("info");
}

/** The driver directory of a container (the layer holding its own files). */
async function containerLayerDir(s: Awaited<ReturnType<typeof cliStore>>, driver: string, name: string) {
  const rows = JSON.parse(await s.ok("--json", "ps")) as Array<{ name: string; mountID: string }>;
  const id = rows.find((r) => r.name === name)!.mountID;
  return driver === "vfs" ? join(s.root, "vfs", "dir", id) : join(s.root, "overlay", id, "diff");
}

for (const driver of ["vfs", "overlay"]) {
  test(`${driver}: a ${DEPTH}-deep layer applies, mounts and is removed; every command works after, check is clean`, async (t) => {
    const s = await cliStore(t, driver);
    const dir = await tempDir(t, "strata-hostile-tar-");
    const tar = join(dir, "deep.tar");
    await writeFile(tar, await deepLayer(DEPTH));
    const id = lastLine(await s.ok("layer", "apply", tar));
    const created = await s.run("create", "deep", id);
    if (driver === "vfs" && created.code !== 0) {
      // vfs copies the parent with `cp -a`, which walks by path: refused in one line, nothing left.
      t.is(created.stderr.trim().split("\n").length, 1, created.stderr);
    } else {
      t.is(created.code, 0, created.stderr);
      t.truthy((await s.ok("mount", "deep")).trim());
      await s.ok("unmount", "deep");
      await s.ok("rm", "deep");
    }
    await s.ok("layer", "rm", id);
    t.deepEqual(JSON.parse(await s.ok("--json", "layer", "ls")), []);
    await everyCommandWorks(t, s);
    t.regex(await s.ok("check"), /store is consistent/);
  });

  test(`${driver}: a removal that cannot finish leaves its leftover to check --repair and breaks no other command`, async (t) => {
    const s = await cliStore(t, driver);
    const dir = await tempDir(t, "strata-hostile-tar-");
    const tar = join(dir, "small.tar");
    await writeFile(tar, await makeTar([{ name: "etc/" }, { name: "etc/hosts", content: "x\n" }]));
    const id = lastLine(await s.ok("layer", "apply", tar));
    await s.ok("create", "c1", id);
    // A mount left inside the container's layer (a leak from a runtime): its removal
    // must not reach into the mounted filesystem, and cannot finish while it is there.
    const inner = join(await containerLayerDir(s, driver, "c1"), "etc");
    await mkdir(inner, { recursive: true });
    await mount("tmpfs", inner, "tmpfs", 0, "size=1m");
    t.teardown(() => umount2(inner, C.MNT_DETACH).catch(() => undefined));
    await writeFile(join(inner, "kept"), "a file of the mounted filesystem\n");
    await s.ok("rm", "c1");
    t.deepEqual(JSON.parse(await s.ok("--json", "ps")), []);
    await everyCommandWorks(t, s);
    const found = await s.run("check");
    t.is(found.code, 1, "the leftover is a problem");
    t.regex(found.stdout, /problem: leftover /);
    const stuck = await s.run("check", "--repair");
    t.is(stuck.code, 1, "a repair that cannot be done is still a problem");
    t.regex(stuck.stdout, /problem: leftover .*cannot remove/);
    // The mount moved with the renamed leftover; what it holds was not touched.
    const moved = (await mountsUnder(s.root)).filter((m) => m.endsWith("/etc"));
    t.is(moved.length, 1);
    t.is(await readFile(join(moved[0]!, "kept"), "utf8"), "a file of the mounted filesystem\n");
    await umount2(moved[0]!, C.MNT_DETACH);
    // Now the next command's start finishes the removal.
    t.regex(await s.ok("check"), /store is consistent/);
    await t.throwsAsync(stat(moved[0]!), { code: "ENOENT" });
  });
}
