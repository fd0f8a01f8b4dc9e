import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import test from "ava";
import { applyLayer } from "../../src/diff/index.js";
import { KERNEL_MAX_LOWERS } from "../../src/drivers/overlay/index.js";
import { unmountOverlay } from "../../src/drivers/overlay/mount.js";
import { fsmountConfig, MOUNT_ATTR } from "../../src/native.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";
import { applySpecs, openOverlay } from "./helpers.js";

test("the kernel takes 500 overlay lowers and refuses 501 (the limit the driver records)", async (t) => {
  const dir = await tempDir(t, "strata-ovl-limit-");
  const lowers: string[] = [];
  for (let i = 0; i <= KERNEL_MAX_LOWERS; i++) {
    lowers.push(join(dir, `l${i}`));
    await mkdir(lowers[i]!);
  }
  const target = join(dir, "m");
  await mkdir(target);
  t.teardown(() => unmountOverlay(target));
  const params = (n: number) => lowers.slice(0, n).map((l): [string, string] => ["lowerdir+", l]);
  await t.notThrowsAsync(fsmountConfig("overlay", params(KERNEL_MAX_LOWERS), target, MOUNT_ATTR.RDONLY));
  await unmountOverlay(target);
  await mkdir(target);
  const err = await t.throwsAsync(fsmountConfig("overlay", params(KERNEL_MAX_LOWERS + 1), target, MOUNT_ATTR.RDONLY));
  t.is((err as { code?: string }).code, "EINVAL");
});

test("a chain past the kernel's lower limit is flattened on create and every layer still mounts", async (t) => {
  const { d, mounts } = await openOverlay(t);
  t.is(d.maxLowers, KERNEL_MAX_LOWERS - 1);
  const depth = KERNEL_MAX_LOWERS + 2;
  let parent = "";
  for (let i = 0; i < depth; i++) {
    const id = `l${i}`;
    await d.create(id, parent);
    if (i === 0 || i >= depth - 5) {
      const specs: Spec[] = [{ name: `f${i}`, content: `layer ${i}` }];
      if (i > 0) specs.push({ name: `.wh.f${i === depth - 5 ? 0 : i - 1}` }); // l0's file goes where the gap is
      await applySpecs(d, mounts, id, parent, specs);
    }
    parent = id;
  }
  const flattened = `l${KERNEL_MAX_LOWERS}`;
  t.is((await d.metadata(flattened)).FlattenedFrom, `l${KERNEL_MAX_LOWERS - 1}`);
  t.is((await d.metadata(`l${KERNEL_MAX_LOWERS - 1}`)).LowerDir?.split(":").length, KERNEL_MAX_LOWERS - 1);
  t.is((await d.metadata(`l${depth - 1}`)).LowerDir?.split(":").length, 1, "the layer above starts a new stack");
  const top = await mounts.acquire(`l${depth - 1}`);
  try {
    const names = (await manifest(top, { mtime: false })).map((l) => l.split(" ")[0]);
    t.deepEqual(names, [`f${depth - 1}`], "whiteouts above and across the flattened layer still hide");
    t.is(await readFile(join(top, `f${depth - 1}`), "utf8"), `layer ${depth - 1}`);
  } finally {
    await mounts.release(`l${depth - 1}`);
  }
  const deepest = await mounts.acquire(`l${KERNEL_MAX_LOWERS - 1}`);
  try {
    t.is(d.lastMountMethod.get(`l${KERNEL_MAX_LOWERS - 1}`), "fsconfig");
    t.is(await readFile(join(deepest, `f${KERNEL_MAX_LOWERS - 1}`), "utf8"), `layer ${KERNEL_MAX_LOWERS - 1}`);
  } finally {
    await mounts.release(`l${KERNEL_MAX_LOWERS - 1}`);
  }
});

test("flattening keeps every layer equal to a flat oracle, and diffs across the flattened layer round-trip", async (t) => {
  const { d, mounts } = await openOverlay(t, { "overlay.max_lowers": "3" });
  const flat = await tempDir(t, "strata-flat-");
  let parent = "";
  for (let i = 0; i < 9; i++) {
    const id = `l${i}`;
    const specs: Spec[] = [
      { name: "d/", mode: 0o755 },
      { name: `d/f${i}`, content: `layer ${i}`, uid: i, xattrs: { "user.layer": String(i) } },
      { name: "top", content: `${i}`, mode: 0o600 + i },
      { name: `hl${i}`, type: "link", linkname: `d/f${i}` },
    ];
    if (i > 0) specs.push({ name: `d/.wh.f${i - 1}` }, { name: `.wh.hl${i - 1}` });
    if (i === 5) specs.push({ name: "o/", mode: 0o700 }, { name: "o/.wh..wh..opq" }, { name: "o/new", content: "o" });
    if (i === 2) specs.push({ name: "o/", mode: 0o755 }, { name: "o/old", content: "gone at 5" });
    await d.create(id, parent);
    const tar = await makeTar(specs);
    await mounts.applyDiff(id, parent, Readable.from(chunks(tar)));
    await applyLayer(flat, chunks(tar));
    const p = await mounts.acquire(id);
    try {
      t.deepEqual(await manifest(p), await manifest(flat), `layer ${i}`);
    } finally {
      await mounts.release(id);
    }
    parent = id;
  }
  t.is((await d.metadata("l4")).FlattenedFrom, "l3");
  t.is((await d.metadata("l8")).FlattenedFrom, "l7");
  // l4 holds a full copy: its diff against l3 must still be only what l4 changed.
  const changes = (await mounts.changes("l4", "l3")).map((c) => `${c.kind} ${c.path}`);
  t.deepEqual(changes, ["C /d", "A /d/f4", "D /d/f3", "A /hl4", "C /top", "D /hl3"]);
  await d.create("again", "l3");
  await mounts.applyDiff("again", "l3", await mounts.diff("l4", "l3"));
  const a = await mounts.acquire("again");
  const b = await mounts.acquire("l4");
  try {
    t.deepEqual(
      await manifest(a, { mtime: "seconds", xattrs: "capability" }),
      await manifest(b, { mtime: "seconds", xattrs: "capability" }),
    );
  } finally {
    await mounts.release("again");
    await mounts.release("l4");
  }
});
