/**
 * Issue 19 item 5: the store trusts nothing inside it. A symlink planted
 * where strata keeps its own data (the tmp dir, a layer dir, the holds and
 * intents dirs, a layer's refs, a container's merged/work dirs, a driver
 * layer) is never followed: nothing outside the store is emptied, written
 * or mounted on, and the command either goes on without it or stops with
 * one clear line. `check` names it; `check --repair` removes the link only.
 */
import { mkdir, readdir, readFile, rename, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { mountPoints } from "../../src/util/mountinfo.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { type CliStore, cliStore, lastLine } from "./helpers.js";

/** A directory outside the store with content a followed symlink would destroy. */
async function outside(t: ExecutionContext): Promise<{ dir: string; intact(): Promise<void> }> {
  const dir = join(await tempDir(t, "strata-outside-"), "victim");
  await mkdir(join(dir, "sub"), { recursive: true });
  await writeFile(join(dir, "canary"), "still here\n");
  await writeFile(join(dir, "sub", "nested"), "nested\n");
  const before = JSON.stringify(await listing(dir));
  return {
    dir,
    async intact() {
      t.is(JSON.stringify(await listing(dir)), before, "nothing outside the store changed");
      t.is(await readFile(join(dir, "canary"), "utf8"), "still here\n");
      t.false((await mountPoints()).has(dir), "nothing was mounted outside the store");
    },
  };
}

async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

/** Runs a command that must either succeed or fail in one line naming what it refused. */
async function refusedOrFine(t: ExecutionContext, s: CliStore, ...args: string[]): Promise<void> {
  const r = await s.run(...args);
  if (r.code === 0) return;
  if (args[0] === "check" && r.stderr === "" && /^problem: /m.test(r.stdout)) return; // it reported what it found
  t.is(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  t.regex(r.stderr, /\[ERR_STORE_SYMLINK\]|\[ERR_LAYER_CORRUPT\]/, `${args.join(" ")}: ${r.stderr}`);
}

async function applied(t: ExecutionContext, s: CliStore): Promise<{ id: string; tar: string }> {
  const tar = join(await tempDir(t, "strata-tar-"), "l.tar");
  await writeFile(tar, await makeTar([{ name: "etc/" }, { name: "etc/os", content: "x\n" }]));
  return { id: lastLine(await s.ok("layer", "apply", tar)), tar };
}

const READS = [["images"], ["layer", "ls"], ["ps"], ["check"], ["prune"]];

for (const driver of ["vfs", "overlay"]) {
  const db = (s: CliStore) => join(s.root, "layerdb", driver);

  test(`${driver}: a symlinked layerdb tmp dir is never emptied`, async (t) => {
    const s = await cliStore(t, driver);
    const { tar } = await applied(t, s);
    const o = await outside(t);
    await rename(join(db(s), "tmp"), join(db(s), "tmp.real"));
    await symlink(o.dir, join(db(s), "tmp"));
    for (const cmd of [...READS, ["layer", "apply", tar], ["check", "--repair"]]) await refusedOrFine(t, s, ...cmd);
    await o.intact();
  });

  test(`${driver}: a symlinked layer dir is not followed; check --repair drops the link only`, async (t) => {
    const s = await cliStore(t, driver);
    const { id } = await applied(t, s);
    const o = await outside(t);
    const layerDir = join(db(s), "sha256", id.slice(7));
    await rename(layerDir, `${layerDir}.moved`);
    await symlink(o.dir, layerDir);
    for (const cmd of [...READS, ["layer", "rm", id]]) await refusedOrFine(t, s, ...cmd);
    const found = await s.run("check");
    t.regex(found.stdout, /foreign-entry sha256\/[0-9a-f]{64}: a symlink/);
    await s.ok("check", "--repair");
    t.regex(await s.ok("check"), /store is consistent/);
    await o.intact();
  });

  test(`${driver}: symlinked holds and intents dirs stop every command in one line; nothing is written outside`, async (t) => {
    const s = await cliStore(t, driver);
    const { id, tar } = await applied(t, s);
    await s.ok("create", "c1", id);
    for (const sub of ["holds", "intents"]) {
      const o = await outside(t);
      await rename(join(db(s), sub), join(db(s), `${sub}.real`));
      await symlink(o.dir, join(db(s), sub));
      for (const cmd of [...READS, ["mount", "c1"], ["layer", "apply", tar], ["create", "c2", id]]) {
        await refusedOrFine(t, s, ...cmd);
      }
      await o.intact();
      await rename(join(db(s), sub), join(db(s), `${sub}.link`));
      await rename(join(db(s), `${sub}.real`), join(db(s), sub));
    }
  });

  test(`${driver}: a symlinked refs dir is not written through; --repair drops the link`, async (t) => {
    const s = await cliStore(t, driver);
    const { id, tar } = await applied(t, s);
    const o = await outside(t);
    const refs = join(db(s), "sha256", id.slice(7), "refs");
    await rename(refs, `${refs}.real`);
    await symlink(o.dir, refs);
    for (const cmd of [["layer", "apply", tar], ["layer", "rm", id], ...READS]) await refusedOrFine(t, s, ...cmd);
    await o.intact();
    await s.ok("check", "--repair");
    await o.intact();
  });

  test(`${driver}: a planted intent file naming a real layer is not followed and rolls nothing back`, async (t) => {
    const s = await cliStore(t, driver);
    const { id } = await applied(t, s);
    const cacheID = (await readFile(join(db(s), "sha256", id.slice(7), "cache-id"), "utf8")).trim();
    const o = await outside(t);
    // An intent of a dead process (pid 1 never has start time 0) that would have the layer's data removed.
    const forged = join(o.dir, "sub", "nested");
    await writeFile(forged, JSON.stringify({ kind: "register", driverIDs: [cacheID], owner: { pid: 1, start: "0" } }));
    const o2 = await outside(t);
    await symlink(forged, join(db(s), "intents", "0123.json"));
    for (const cmd of READS) await refusedOrFine(t, s, ...cmd);
    const layers = JSON.parse(await s.ok("--json", "layer", "ls")) as Array<{ chainID: string }>;
    t.deepEqual(
      layers.map((l) => l.chainID),
      [id],
      "the layer is still there",
    );
    t.regex((await s.run("check")).stdout, /foreign-entry intents\/0123.json: a symlink/);
    await o2.intact();
  });

  test(`${driver}: a symlink planted as a container's layer dir or ${driver === "overlay" ? "merged/work dir" : "tree"} is refused by mount`, async (t) => {
    const s = await cliStore(t, driver);
    const { id } = await applied(t, s);
    await s.ok("create", "c1", id);
    const mountID = (JSON.parse(await s.ok("--json", "ps")) as Array<{ mountID: string }>)[0]!.mountID;
    const plants =
      driver === "vfs"
        ? [join(s.root, "vfs", "dir", mountID)]
        : ["merged", "work"].map((d) => join(s.root, "overlay", mountID, d));
    for (const plant of plants) {
      const o = await outside(t);
      await rename(plant, `${plant}.real`).catch(() => undefined); // merged/ exists only while mounted
      await symlink(o.dir, plant);
      const r = await s.run("mount", "c1");
      t.not(r.code, 0, `mount through a symlinked ${plant}`);
      t.regex(r.stderr, /\[ERR_STORE_SYMLINK\]|\[ERR_LAYER_CORRUPT\]|\[ERR_LAYER_NOT_FOUND\]/);
      for (const cmd of READS) await refusedOrFine(t, s, ...cmd);
      await o.intact();
      await rename(plant, `${plant}.link`);
      await rename(`${plant}.real`, plant).catch(() => undefined);
    }
  });
}
