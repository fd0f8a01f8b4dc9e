/**
 * A SIGKILLed pool daemon under mounted thin devices: every I/O on them
 * fails, `check` reports each broken mount (holds compared with the pool's
 * state), and `check --repair` mounts them again from the last commit: what
 * was fsync'd is there, and the mount works again.
 */
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import test from "ava";
import { check } from "../../src/layer/index.js";
import { chunks, makeTar } from "../helpers/tar.js";
import { openDmStore } from "./helpers.js";

async function writeSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, "w");
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

test.serial("a SIGKILLed pool daemon: check reports the broken mounts, --repair mounts them again", async (t) => {
  const { root, store } = await openDmStore(t);
  const tar = Readable.from(chunks(await makeTar([{ name: "etc/" }, { name: "etc/os-release", content: "ID=x\n" }])));
  const img = await store.register(tar, "", { ref: "user" });
  const c = await store.createRWLayer("c", img.chainID);
  const path = await store.mount("c");
  await writeSynced(join(path, "kept"), "fsync'd before the kill");
  t.deepEqual(await check(store, false), []);

  const pidFile = join(root, "devmapper", "devicemapper", "daemon.pid");
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  process.kill(pid, "SIGKILL");
  await new Promise((r) => setTimeout(r, 300));
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
});
