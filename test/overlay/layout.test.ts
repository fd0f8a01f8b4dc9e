import { access, lstat, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { LINK_ID_LENGTH } from "../../src/drivers/overlay/layout.js";
import { builtinDrivers } from "../../src/drivers/index.js";
import { applySpecs, mountCount, openOverlay } from "./helpers.js";

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

test("overlay lays a chain out as overlay2 does: diff, link, lower, work, committed, l/ links", async (t) => {
  const { d, root } = await openOverlay(t);
  const home = join(root, "overlay");
  await d.create("base", "");
  await d.create("mid", "base");
  await d.createReadWrite("top", "mid");
  const link = async (id: string) => (await readFile(join(home, id, "link"), "utf8")).trim();
  for (const id of ["base", "mid", "top"]) {
    t.true((await stat(join(home, id, "diff"))).isDirectory());
    t.regex(await link(id), new RegExp(`^[A-Z2-7]{${LINK_ID_LENGTH}}$`));
    t.is(await readlink(join(home, "l", await link(id))), `../${id}/diff`);
    t.false(await exists(join(home, id, "merged")), "merged/ exists only while mounted");
  }
  t.false(await exists(join(home, "base", "lower")));
  t.false(await exists(join(home, "base", "work")));
  t.is(await readFile(join(home, "mid", "lower"), "utf8"), `l/${await link("base")}`);
  t.is(await readFile(join(home, "top", "lower"), "utf8"), `l/${await link("mid")}:l/${await link("base")}`);
  t.true((await stat(join(home, "top", "work"))).isDirectory());
  t.true(await exists(join(home, "base", "committed")));
  t.true(await exists(join(home, "mid", "committed")));
  t.false(await exists(join(home, "top", "committed")));
  const md = await d.metadata("top");
  t.deepEqual(md, {
    WorkDir: join(home, "top", "work"),
    MergedDir: join(home, "top", "merged"),
    UpperDir: join(home, "top", "diff"),
    LowerDir: `${join(home, "mid", "diff")}:${join(home, "base", "diff")}`,
  });
});

test("overlay get mounts a committed layer read-only and a leaf read-write; put unmounts and removes merged", async (t) => {
  const { d, root, mounts } = await openOverlay(t);
  const home = join(root, "overlay");
  await d.create("base", "");
  await applySpecs(d, mounts, "base", "", [
    { name: "etc/", mode: 0o755 },
    { name: "etc/os", content: "base" },
  ]);
  await d.create("img", "base");
  await applySpecs(d, mounts, "img", "base", [{ name: "etc/os", content: "img" }]);
  await d.createReadWrite("ctr", "img");
  t.is(await d.get("base"), join(home, "base", "diff"), "a layer without lowers is its diff dir, unmounted");
  const img = await d.get("img");
  t.is(img, join(home, "img", "merged"));
  t.is(await readFile(join(img, "etc/os"), "utf8"), "img");
  const ro = await t.throwsAsync(writeFile(join(img, "x"), "x"));
  t.is((ro as NodeJS.ErrnoException).code, "EROFS");
  const ctr = await d.get("ctr");
  await writeFile(join(ctr, "etc/os"), "ctr");
  t.is(await readFile(join(home, "ctr", "diff", "etc/os"), "utf8"), "ctr", "writes land in the upper dir");
  await d.put("img");
  await d.put("ctr");
  await d.put("base");
  t.is(await mountCount(join(home, "img", "merged")), 0);
  t.false(await exists(join(home, "ctr", "merged")));
  await t.notThrowsAsync(d.put("ctr"), "put of an unmounted layer is a no-op");
});

test("overlay mounts a 128-deep chain from the home with relative paths, and deeper ones with lowerdir+", async (t) => {
  const { d, root } = await openOverlay(t);
  let parent = "";
  for (let i = 0; i < 200; i++) {
    const id = `layer-with-a-rather-long-identifier-${String(i).padStart(4, "0")}`;
    await d.create(id, parent);
    parent = id;
    if (i === 0 || i === 128 || i === 199) {
      await d.get(id);
      const method = i === 0 ? undefined : d.lastMountMethod.get(id);
      await d.put(id);
      const lowers = i; // layer i has i lowers
      const absolute = lowers * (join(root, "overlay", "l").length + LINK_ID_LENGTH + 2);
      t.log(`${lowers} lowers: ${method ?? "no mount"} (absolute data ≈ ${absolute} bytes)`);
      if (i === 128) t.is(method, "mountfrom");
      if (i === 199) t.is(method, d.support.lowerdirPlus ? "fsconfig" : undefined);
    }
  }
});

test("overlay is first in the built-in priority order, ahead of vfs", (t) => {
  const names = builtinDrivers().names();
  t.is(names[0], "overlay");
  t.true(names.indexOf("overlay") < names.indexOf("vfs"));
});

test("overlay status reports backing fs, d_type, native diff and the lower limit", async (t) => {
  const { d } = await openOverlay(t);
  const st = new Map(await d.status());
  t.is(st.get("Backing Filesystem"), d.support.backingFs);
  t.is(st.get("Supports d_type"), "true");
  t.regex(st.get("Native Overlay Diff") ?? "", /^(true|false)$/);
  t.regex(st.get("Max Lower Layers") ?? "", /^\d+ \(kernel limit 500/);
  const keys = [...st.keys()];
  t.deepEqual(keys.slice(0, 3), ["Backing Filesystem", "Supports d_type", "Native Overlay Diff"]);
});

test("overlay rejects bad options and ids with stable codes", async (t) => {
  const bad = await t.throwsAsync(openOverlay(t, { "overlay.nope": "1" }));
  t.is((bad as { code?: string }).code, "ERR_INVALID_OPTION");
  const depth = await t.throwsAsync(openOverlay(t, { "overlay.max_lowers": "500" }));
  t.is((depth as { code?: string }).code, "ERR_INVALID_OPTION");
  const { d } = await openOverlay(t);
  const id = await t.throwsAsync(d.create("../evil", ""));
  t.is((id as { code?: string }).code, "ERR_INVALID_ID");
  const size = await t.throwsAsync(d.create("img", "", { storageOpt: { size: "1G" } }));
  t.is((size as { code?: string }).code, "ERR_INVALID_ARGUMENT");
  const unknown = await t.throwsAsync(d.createReadWrite("c", "", { storageOpt: { colour: "red" } }));
  t.is((unknown as { code?: string }).code, "ERR_INVALID_ARGUMENT");
  t.false(await d.exists("img"));
  t.false(await d.exists("c"));
  await t.throwsAsync(lstat(d.home), { code: "ENOENT" }, "nothing was created: no home either");
});
