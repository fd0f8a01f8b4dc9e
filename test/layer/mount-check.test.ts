/**
 * `check` compares the mount holds with the mount table: a held layer that
 * was unmounted by hand is reported, and `check --repair` mounts it again for
 * its holds. Run on every driver that mounts (vfs does not).
 */
import { readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import test from "ava";
import { builtinDrivers } from "../../src/drivers/index.js";
import { check, LayerStore } from "../../src/layer/index.js";
import { C, umount2 } from "../../src/native.js";
import { mountPoints } from "../../src/util/mountinfo.js";
import { driverTestOptions, supportedDrivers, teardownDriver } from "../helpers/drivers.js";
import { chunks, makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

const drivers = (await supportedDrivers()).filter((d) => d !== "vfs");

for (const name of drivers) {
  test.serial(
    `${name}: a hold whose mount was unmounted by hand is reported, and --repair mounts it again`,
    async (t) => {
      const root = await tempDir(t, "strata-mcheck-");
      const driver = await builtinDrivers()
        .get(name)
        .factory({ root, options: driverTestOptions(name) });
      const store = await LayerStore.open(root, driver);
      t.teardown(async () => {
        await store.close();
        await teardownDriver(driver);
      });
      const tar = Readable.from(
        chunks(await makeTar([{ name: "etc/" }, { name: "etc/os-release", content: "ID=x\n" }])),
      );
      const img = await store.register(tar, "", { ref: "user" });
      const c = await store.createRWLayer("c", img.chainID);
      const path = await store.mount("c");
      await writeFile(join(path, "kept"), "before");
      t.deepEqual(await check(store, false), []);

      // What an administrator's `umount` leaves: the hold, and nothing mounted.
      const table = await mountPoints();
      await umount2(table.has(path) ? path : dirname(path), C.MNT_DETACH);
      const problems = await check(store, false);
      t.deepEqual(
        problems.map((p) => [p.kind, p.subject]),
        [["hold-without-mount", c.mountID]],
      );
      t.regex(problems[0]!.detail, /not mounted/);

      t.is((await check(store, true)).length, 1);
      t.deepEqual(await check(store, false), [], "repaired");
      t.is(await store.mounts.count(c.mountID), 1, "the hold is kept");
      const again = await store.mount("c"); // a second hold: same path, mounted
      t.is(again, path);
      t.is(await readFile(join(again, "kept"), "utf8"), "before");
      await store.unmount("c");
      await store.unmount("c");
    },
  );
}
