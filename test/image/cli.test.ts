/**
 * The image commands end to end through the real `strata` command (a child
 * process) on a vfs store: pull from a real registry, images, tag, inspect,
 * save (both formats), load, push, rmi.
 */
import test from "ava";
import { join } from "node:path";
import { strata } from "../helpers/cli.js";
import { tempDir } from "../helpers/tmp.js";
import { tree, umociRootfs } from "./common.js";
import { writeFixtureLayout } from "./fixture.js";
import { skopeo, startRegistry } from "./peers.js";

test("pull, images, tag, inspect, save, load, push and rmi through the command", async (t) => {
  const reg = await startRegistry(t);
  const fx = await writeFixtureLayout(await tempDir(t), "v1", 11);
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker://${reg.addr}/cli/img:v1`, "--dest-tls-verify=false");
  const manifestDigest = JSON.parse(await skopeo("inspect", "--tls-verify=false", `docker://${reg.addr}/cli/img:v1`))
    .Digest as string;
  const dir = await tempDir(t);
  const g = ["--root", join(dir, "root"), "--driver", "vfs"];
  const run = async (...args: string[]) => {
    const r = await strata([...g, ...args]);
    t.is(r.code, 0, `strata ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const pulled = await run("pull", "-q", `${reg.addr}/cli/img:v1`);
  t.is(pulled, `${reg.addr}/cli/img:v1\n`, "pull -q prints the name only");
  const again = await run("pull", `${reg.addr}/cli/img:v1`);
  t.regex(again, new RegExp(`^Digest: ${manifestDigest}\n`), "pull prints the manifest digest, as docker does");
  const json = JSON.parse(await run("--json", "pull", `${reg.addr}/cli/img:v1`));
  t.deepEqual(json, { Id: fx.configDigest, Digest: manifestDigest, Name: `${reg.addr}/cli/img:v1` });
  await run("tag", `${reg.addr}/cli/img:v1`, "mine:1");
  t.regex(await run("images"), /^mine +1 +[0-9a-f]{12} +/m);
  const inspect = JSON.parse(await run("inspect", "mine:1"));
  t.true(Array.isArray(inspect), "inspect prints docker's array");
  t.is(inspect[0].Id, fx.configDigest);
  t.deepEqual(inspect[0].RootFS.Layers, fx.diffIDs);
  await run("save", "mine:1", "-o", join(dir, "a.tar"));
  await run("save", "--format", "oci", "--compress", "gzip", "mine:1", "-o", join(dir, "oci"));
  t.deepEqual(await tree(await umociRootfs(t, join(dir, "oci"), "1")), await tree(await umociRootfs(t, fx.dir, "v1")));
  t.regex(await run("load", join(dir, "oci:1"), "-t", "from-oci:2", "--quiet"), /Loaded image: from-oci:2/);
  const pushed = await run("push", "--quiet", "mine:1", `${reg.addr}/cli/pushed:1`);
  t.regex(pushed, /^1: digest: sha256:[0-9a-f]{64}$/m);
  const cfg = JSON.parse(
    await skopeo("inspect", "--tls-verify=false", "--config", `docker://${reg.addr}/cli/pushed:1`),
  );
  t.deepEqual(cfg.rootfs.diff_ids, fx.diffIDs);
  t.regex(await run("rmi", "mine:1"), /Untagged: mine:1/);
  await run("rmi", "from-oci:2");
  t.regex(await run("rmi", `${reg.addr}/cli/img:v1`), /Deleted: sha256:/);
  t.deepEqual(JSON.parse(await run("--json", "layer", "ls")), [], "rmi of the last name released the layers");
  const bad = await strata([...g, "save", "--format", "zip", "x", "-o", join(dir, "z")]);
  t.is(bad.code, 125, "a bad flag value is a usage error");
  t.regex(bad.stderr, /^strata: Cannot save: unknown format "zip" \[ERR_USAGE\]\nSee 'strata save --help'\.\n$/);
});
