/** ext4 and xfs on thin devices: fill, snapshot, change both sides, fsck both, each side sees only its own changes. */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { C, mount, umount2 } from "../../src/native.js";
import { tempDir } from "../helpers/tmp.js";
import { makePool, run, stopPool, thinCheck, thinDump } from "./helpers.js";

const SIZE = 512 << 20;

const fsck: Record<string, (dev: string) => Promise<unknown>> = {
  ext4: (dev) => run("e2fsck", ["-fn", dev]),
  xfs: (dev) => run("xfs_repair", ["-n", dev]),
};
const mkfs: Record<string, (dev: string) => Promise<unknown>> = {
  ext4: (dev) => run("mkfs.ext4", ["-q", "-E", "nodiscard,lazy_itable_init=0", dev]),
  xfs: (dev) => run("mkfs.xfs", ["-q", "-K", dev]),
};

for (const fstype of ["ext4", "xfs"]) {
  test(`${fstype} on a thin device and its snapshot: fsck clean, changes stay on their side`, async (t) => {
    const { pool } = await makePool(t, { dataSize: 1 << 30 });
    const mnt = await tempDir(t, "strata-fsmnt-");
    const mounted = new Set<string>();
    t.teardown(async () => {
      for (const m of mounted) await umount2(m, C.MNT_DETACH).catch(() => {});
    });
    const mountAt = async (dev: string, name: string) => {
      const at = join(mnt, name);
      await mkdir(at, { recursive: true });
      // A snapshot carries its origin's XFS UUID: mount with nouuid, as Docker does.
      await mount(dev, at, fstype, 0, fstype === "xfs" ? "nouuid" : null);
      mounted.add(at);
      return at;
    };
    const unmount = async (at: string) => {
      await umount2(at);
      mounted.delete(at);
    };

    await pool.createThin(1);
    const origin = await pool.activate(1, SIZE);
    await mkfs[fstype](origin);
    let at = await mountAt(origin, "origin");
    await run("dd", ["if=/dev/urandom", `of=${join(at, "fill")}`, "bs=1M", "count=64", "conv=fsync"]);
    await writeFile(join(at, "shared.txt"), "before the snapshot\n");
    await unmount(at);

    await pool.createSnap(2, 1);
    const snap = await pool.activate(2, SIZE);
    at = await mountAt(origin, "origin");
    const sat = await mountAt(snap, "snap");
    await writeFile(join(at, "shared.txt"), "changed on the origin\n");
    await writeFile(join(at, "origin-only.txt"), "origin\n");
    await writeFile(join(sat, "shared.txt"), "changed on the snapshot\n");
    await writeFile(join(sat, "snap-only.txt"), "snap\n");
    await run("dd", ["if=/dev/urandom", `of=${join(sat, "fill")}`, "bs=1M", "count=8", "conv=notrunc,fsync"]);
    const fillSnap = (await run("sha256sum", [join(sat, "fill")])).stdout.split(" ")[0];
    const fillOrigin = (await run("sha256sum", [join(at, "fill")])).stdout.split(" ")[0];
    t.not(fillSnap, fillOrigin);
    await unmount(at);
    await unmount(sat);

    await fsck[fstype](origin);
    await fsck[fstype](snap);
    at = await mountAt(origin, "origin");
    const sat2 = await mountAt(snap, "snap");
    t.is(await readFile(join(at, "shared.txt"), "utf8"), "changed on the origin\n");
    t.is(await readFile(join(sat2, "shared.txt"), "utf8"), "changed on the snapshot\n");
    t.is(await readFile(join(at, "origin-only.txt"), "utf8"), "origin\n");
    t.is(await readFile(join(sat2, "snap-only.txt"), "utf8"), "snap\n");
    await t.throwsAsync(readFile(join(at, "snap-only.txt")));
    await t.throwsAsync(readFile(join(sat2, "origin-only.txt")));
    t.is((await run("sha256sum", [join(at, "fill")])).stdout.split(" ")[0], fillOrigin);
    t.is((await run("sha256sum", [join(sat2, "fill")])).stdout.split(" ")[0], fillSnap);
    await unmount(at);
    await unmount(sat2);

    const info = await pool.info();
    const meta = pool.layout.metadataFile;
    await stopPool(pool);
    await thinCheck(meta);
    const dump = await thinDump(meta);
    t.deepEqual(
      dump.devices.map((d) => [d.id, d.mappedBlocks]),
      info.devices.map((d) => [d.id, d.mappedBlocks]),
    );
    const [o, s] = dump.devices;
    const shared = [...o.map].filter(([vb, b]) => s.map.get(vb) === b).length;
    t.true(shared > 800, `most of the 64 MiB fill (1024 blocks, 128 rewritten) stays shared (${shared} blocks)`);
    t.true(shared < o.map.size, "some blocks were copied");
  });
}
