/**
 * The pool daemon killed under mounted thin devices. Alone, its keeper
 * starts a new one on the same FUSE connection: the mount goes on working,
 * unflushed writes included, and `check` finds nothing. With its keeper
 * (nothing takes over): every I/O fails, `check` reports each broken mount
 * (holds compared with the pool's state), and `check --repair` mounts them
 * again from the last commit: what was fsync'd is there, and the mount works
 * again.
 */
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import test from "ava";
import { check } from "../../src/layer/index.js";
import { ThinPool } from "../../src/thinpool/index.js";
import { chunks, makeTar } from "../helpers/tar.js";
import { killDaemon } from "../thinpool/helpers.js";
import { openDmStore, run } from "./helpers.js";

const poolDir = (root: string) => join(root, "devmapper", "devicemapper");

async function writeSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, "w");
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

test.serial(
  "a SIGKILLed pool daemon alone: a new one takes over, the mount keeps working, check is clean",
  async (t) => {
    const { root, store } = await openDmStore(t);
    const tar = Readable.from(chunks(await makeTar([{ name: "etc/" }, { name: "etc/os-release", content: "ID=x\n" }])));
    const img = await store.register(tar, "", { ref: "user" });
    await store.createRWLayer("c", img.chainID);
    const path = await store.mount("c");
    await writeSynced(join(path, "before"), "fsync'd before the kill");
    // Written to the device without a flush: its blocks' mappings may exist only in the daemon's memory (and journal).
    const pool = await ThinPool.open(poolDir(root));
    await run("dd", [
      "if=/dev/urandom",
      `of=${join(path, "unflushed")}`,
      "bs=1M",
      "count=8",
      "oflag=direct",
      "status=none",
    ]);
    const unflushed = await readFile(join(path, "unflushed"));
    const old = pool.pid;
    process.kill(old, "SIGKILL");
    await writeSynced(join(path, "after"), "written while a new daemon took over");
    const again = await ThinPool.open(poolDir(root));
    t.not(again.pid, old, "a new daemon serves");
    t.deepEqual(await check(store, false), [], "nothing is broken");
    t.is(await readFile(join(path, "before"), "utf8"), "fsync'd before the kill");
    t.is(await readFile(join(path, "after"), "utf8"), "written while a new daemon took over");
    await store.unmount("c");
    // Mounted afresh (the page cache dropped with it): the blocks read back from the pool.
    const p2 = await store.mount("c");
    t.true((await readFile(join(p2, "unflushed"))).equals(unflushed), "writes the dead daemon had mapped survive");
    await store.unmount("c");
  },
);

test.serial(
  "a SIGKILLed pool daemon and keeper: check reports the broken mounts, --repair mounts them again",
  async (t) => {
    const { root, store } = await openDmStore(t);
    const tar = Readable.from(chunks(await makeTar([{ name: "etc/" }, { name: "etc/os-release", content: "ID=x\n" }])));
    const img = await store.register(tar, "", { ref: "user" });
    const c = await store.createRWLayer("c", img.chainID);
    const path = await store.mount("c");
    await writeSynced(join(path, "kept"), "fsync'd before the kill");
    t.deepEqual(await check(store, false), []);

    // Keeper and daemon: nothing takes over the FUSE connection.
    await killDaemon(await ThinPool.open(poolDir(root)));
    const err = await t.throwsAsync(writeSynced(join(path, "after"), "x"));
    t.regex(String((err as NodeJS.ErrnoException).code), /EIO|ENOTCONN|EROFS/, "I/O fails on the dead device");

    const problems = await check(store, false);
    t.deepEqual(
      problems.map((p) => [p.kind, p.subject]),
      [["broken-mount", c.mountID]],
    );
    t.regex(problems[0]!.detail, /pool daemon that is gone/);

    t.is((await check(store, true)).length, 1);
    t.deepEqual(await check(store, false), [], "repaired");
    t.is(await readFile(join(path, "kept"), "utf8"), "fsync'd before the kill");
    await writeSynced(join(path, "after"), "works again");
    t.is(await readFile(join(path, "after"), "utf8"), "works again");
    t.is(await store.mounts.count(c.mountID), 1, "the hold is kept");
    await store.unmount("c");
  },
);
