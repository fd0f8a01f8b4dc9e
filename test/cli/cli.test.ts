/** The strata command as a user runs it: outputs, --json, errors as one line with a non-zero exit. */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { readTar } from "../helpers/tar-reader.js";
import { strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { driverTestArgs, supportedDrivers } from "../helpers/drivers.js";
import { tempDir } from "../helpers/tmp.js";
import { createReadStream } from "node:fs";

const drivers = await supportedDrivers();

for (const driver of drivers)
  test(`${driver}: layer apply, create, mount, diff, commit -o, rm, check through the CLI`, async (t) => {
    const dir = await tempDir(t, "strata-cli-");
    const g = ["--root", join(dir, "root"), "--driver", driver, ...driverTestArgs(driver)];
    await writeFile(join(dir, "l.tar"), await makeTar([{ name: "etc/" }, { name: "etc/a", content: "a" }]));
    const apply = await strata([...g, "layer", "apply", join(dir, "l.tar")]);
    t.is(apply.code, 0, apply.stderr);
    const id = apply.stdout.trim();
    t.regex(id, /^sha256:[a-f0-9]{64}$/);
    t.is((await strata([...g, "layer", "export", id, "-o", join(dir, "out.tar")])).code, 0);
    t.true(
      (await readFile(join(dir, "out.tar"))).equals(await readFile(join(dir, "l.tar"))),
      "export gives the exact bytes",
    );
    const ls = JSON.parse((await strata([...g, "--json", "layer", "ls"])).stdout) as Array<{ chainID: string }>;
    t.deepEqual(
      ls.map((l) => l.chainID),
      [id],
    );
    t.is((await strata([...g, "create", "web", id.slice(7, 19)])).code, 0);
    const mp = (await strata([...g, "mount", "web"])).stdout.trim();
    await writeFile(join(mp, "etc/a"), "changed");
    await mkdir(join(mp, "new"));
    const diff = await strata([...g, "diff", "web"]);
    t.is(diff.stdout, "C /etc\nC /etc/a\nA /new\n");
    const rm = await strata([...g, "rm", "web"]);
    t.is(rm.code, 1);
    t.regex(rm.stderr, /^strata: Cannot remove container: it is mounted .* \[ERR_ACTIVE_MOUNT\]\n$/);
    const commit = await strata([...g, "commit", "web", "web-image", "-o", join(dir, "c.tar")]);
    t.is(commit.code, 0, commit.stderr);
    const names: string[] = [];
    for await (const e of readTar(createReadStream(join(dir, "c.tar")))) {
      names.push(e.header.name);
      if (e.header.name === "etc/a") t.is((await e.readAll()).toString(), "changed");
      else await e.skip();
    }
    t.deepEqual(names, ["etc/", "etc/a", "new/"]);
    const ps = JSON.parse((await strata([...g, "--json", "ps"])).stdout) as Array<{ name: string; mounts: number }>;
    t.deepEqual(
      ps.map((p) => [p.name, p.mounts]),
      [["web", 1]],
    );
    t.is((await strata([...g, "unmount", "web"])).code, 0);
    t.is((await strata([...g, "rm", "web"])).code, 0);
    t.is((await strata([...g, "create", "again", "web-image"])).code, 0, "an image name from commit resolves");
    const info = await strata([...g, "info"]);
    t.regex(info.stdout, new RegExp(`Storage Driver: ${driver}`));
    t.regex(info.stdout, /Layers: 2/);
    t.regex((await strata([...g, "check"])).stdout, /store is consistent/);
    t.is((await strata([...g, "rm", "again"])).code, 0);
    const removeBase = await strata([...g, "layer", "rm", id]);
    t.is(removeBase.code, 1, "the base still has a child");
    t.regex(removeBase.stderr, /ERR_LAYER_IN_USE/);
  });

test("errors are one line with a non-zero exit and no stack unless --debug", async (t) => {
  const dir = await tempDir(t, "strata-cli-");
  const g = ["--root", join(dir, "root"), "--driver", "vfs"];
  const missing = await strata([...g, "diff", "nope"]);
  t.is(missing.code, 1);
  t.is(missing.stderr, 'strata: Cannot find container: no container "nope" [ERR_CONTAINER_NOT_FOUND]\n');
  const badDriver = await strata(["--root", dir, "--driver", "zfs", "info"]);
  t.is(badDriver.code, 2);
  t.is(badDriver.stderr.trim().split("\n").length, 1);
  await writeFile(join(dir, "evil.tar"), await makeTar([{ name: "../../etc/passwd", content: "x" }]));
  const evil = await strata([...g, "layer", "apply", join(dir, "evil.tar")]);
  t.is(evil.code, 1);
  t.regex(evil.stderr, /ERR_BREAKOUT/);
  t.is(evil.stderr.trim().split("\n").length, 1);
  const debug = await strata([...g, "--debug", "diff", "nope"]);
  t.regex(debug.stderr, /at /, "--debug shows the stack");
  const opt = await strata([...g, "--storage-opt", "novalue", "info"]);
  t.is(opt.code, 2);
  t.regex(opt.stderr, /ERR_INVALID_OPTION/);
});
