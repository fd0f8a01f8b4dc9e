/**
 * Containers and the images they come from, through the `strata` command as
 * a Docker user drives it: `rmi` of an image a container uses is refused
 * unless forced, forced it keeps the container's layers, a later `commit`
 * still writes the image's full config (Cmd, Env, history) and prints the
 * image ID; `images --json` has every layer's size, shared ones too.
 */
import test from "ava";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ImageStore, parseConfig } from "../../src/image/index.js";
import { strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { fixtureLayers, writeFixtureLayout } from "./fixture.js";

async function store(t: import("ava").ExecutionContext) {
  const dir = await tempDir(t, "strata-ctrimg-");
  const root = join(dir, "root");
  return { dir, root, g: ["--root", root, "--driver", "vfs"] };
}

async function ok(args: string[]) {
  const r = await strata(args);
  if (r.code !== 0) throw new Error(`strata ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

test("rmi of an image a container uses is refused, -f removes the record, and commit keeps the image's config", async (t) => {
  const { dir, root, g } = await store(t);
  const fx = await writeFixtureLayout(join(dir, "fx"), "v1", 51);
  await ok([...g, "load", "-q", "-t", "web:1", fx.dir]);
  await ok([...g, "create", "c1", "web:1"]);

  const refused = await strata([...g, "rmi", "web:1"]);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /Cannot remove the image: container "c1" uses it "web:1".*ERR_IMAGE_IN_USE/);
  t.is(JSON.parse(await ok([...g, "--json", "images"])).length, 1, "the image is still there");

  await ok([...g, "rmi", "-f", "web:1"]);
  t.deepEqual(JSON.parse(await ok([...g, "--json", "images"])), [], "forced: the record is gone");
  const mp = await ok([...g, "mount", "c1"]);
  await writeFile(join(mp, "added"), "after rmi -f");
  await ok([...g, "unmount", "c1"]);
  t.regex(await ok([...g, "check"]), /store is consistent/, "the container's layers are kept");

  const id = await ok([...g, "commit", "c1", "web:2"]);
  t.regex(id, /^sha256:[0-9a-f]{64}$/);
  const listed = JSON.parse(await ok([...g, "--json", "images"])) as Array<{ id: string; repoTags: string[] }>;
  t.deepEqual(
    listed.map((i) => [i.id, i.repoTags]),
    [[id, ["docker.io/library/web:2"]]],
    "commit prints the image ID images lists",
  );
  const images = await ImageStore.openFor(root, "vfs");
  t.teardown(() => images.close());
  const cfg = parseConfig(await images.config(id));
  t.deepEqual(cfg.config?.Cmd, ["/bin/tool"], "the image's Cmd is kept");
  t.deepEqual(cfg.config?.Env, ["SEED=51"]);
  t.deepEqual(
    cfg.history?.map((h) => h.created_by),
    ["layer 0", "layer 1", "layer 2", "strata commit"],
    "the image's history, and the commit",
  );
  t.is(cfg.rootfs.diff_ids.length, 4);
  const [inspect] = JSON.parse(await ok([...g, "inspect", "web:2"]));
  t.is(inspect.Id, id);
  t.deepEqual(inspect.Config.Cmd, ["/bin/tool"]);
  t.regex(await ok([...g, "check"]), /store is consistent/);
});

test("rmi of an image works once its container is removed; a container made from a layer id counts too", async (t) => {
  const { dir, g } = await store(t);
  const fx = await writeFixtureLayout(join(dir, "fx"), "v1", 52);
  await ok([...g, "load", "-q", "-t", "app:1", fx.dir]);
  const [inspect] = JSON.parse(await ok([...g, "inspect", "app:1"]));
  t.is(inspect.RootFS.Layers.length, 3);
  const top = (JSON.parse(await ok([...g, "--json", "images"])) as Array<{ layers: Array<{ chainID: string }> }>)[0]!
    .layers[2]!.chainID;
  await ok([...g, "create", "by-layer", top]);
  t.regex((await strata([...g, "rmi", "app:1"])).stderr, /container "by-layer" uses it/);
  await ok([...g, "rm", "by-layer"]);
  t.regex(await ok([...g, "rmi", "app:1"]), /Deleted: sha256:/);
  t.deepEqual(JSON.parse(await ok([...g, "--json", "layer", "ls"])), [], "the layers went with the image");
});

test("images --json has the size of every layer, a base layer shared with an image loaded before too", async (t) => {
  const { dir, g } = await store(t);
  const tars = await fixtureLayers(53);
  const other = await makeTar([{ name: "b/" }, { name: "b/only", content: "image b" }]);
  const a = await writeFixtureLayout(join(dir, "a"), "v1", 53, tars);
  const b = await writeFixtureLayout(join(dir, "b"), "v1", 53, [tars[0]!, tars[1]!, other]);
  await ok([...g, "load", "-q", "-t", "a:1", a.dir]);
  await ok([...g, "load", "-q", "-t", "b:1", b.dir]);
  const list = JSON.parse(await ok([...g, "--json", "images"])) as Array<{ layers: Array<{ size?: number }> }>;
  t.is(list.length, 2);
  for (const img of list) t.true(img.layers.every((l) => typeof l.size === "number" && l.size > 0));
});
