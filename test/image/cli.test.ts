/**
 * The image commands end to end through commander, on a LayerStore (vfs):
 * pull from a real registry, images, tag, inspect, save (both formats), load, push, rmi.
 */
import test from "ava";
import { Command } from "commander";
import { join } from "node:path";
import { registerImageCommands } from "../../src/cli/images.js";
import { tempDir } from "../helpers/tmp.js";
import { chainIDsOf, stores, tree, umociRootfs } from "./common.js";
import { writeFixtureLayout } from "./fixture.js";
import { skopeo, startRegistry } from "./peers.js";

test("pull, images, tag, inspect, save, load, push and rmi through the commands", async (t) => {
  const reg = await startRegistry(t);
  const fx = await writeFixtureLayout(await tempDir(t), "v1", 11);
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker://${reg.addr}/cli/img:v1`, "--dest-tls-verify=false");
  const s = await stores(t);
  const out: string[] = [];
  const strata = async (...args: string[]) => {
    const program = new Command().exitOverride();
    registerImageCommands(
      program,
      async () => ({ ...s, close: async () => {} }),
      (line) => out.push(line),
    );
    out.length = 0;
    await program.parseAsync(["node", "strata", ...args]);
    return out.join("\n");
  };
  t.regex(await strata("pull", "--quiet", `${reg.addr}/cli/img:v1`), new RegExp(`cli/img:v1: ${fx.configDigest}`));
  await strata("tag", `${reg.addr}/cli/img:v1`, "mine:1");
  const listing = await strata("images");
  t.regex(listing, /^mine\t1\t[0-9a-f]{12}\t3$/m);
  const [inspect] = JSON.parse(await strata("inspect", "mine:1"));
  t.is(inspect.Id, fx.configDigest);
  t.deepEqual(inspect.RootFS.Layers, fx.diffIDs);
  const dir = await tempDir(t);
  await strata("save", "mine:1", "-o", join(dir, "a.tar"));
  await strata("save", "--format", "oci", "--compress", "gzip", "mine:1", "-o", join(dir, "oci"));
  t.deepEqual(await tree(await umociRootfs(t, join(dir, "oci"), "1")), await tree(await umociRootfs(t, fx.dir, "v1")));
  t.regex(await strata("load", join(dir, "oci:1"), "-t", "from-oci:2", "--quiet"), /Loaded image: .*from-oci:2/);
  t.regex(await strata("push", "--quiet", "mine:1", `${reg.addr}/cli/pushed:1`), /digest: sha256:[0-9a-f]{64}/);
  const cfg = JSON.parse(
    await skopeo("inspect", "--tls-verify=false", "--config", `docker://${reg.addr}/cli/pushed:1`),
  );
  t.deepEqual(cfg.rootfs.diff_ids, fx.diffIDs);
  t.regex(await strata("rmi", "mine:1"), /Untagged: mine:1/);
  await strata("rmi", "from-oci:2");
  const last = await strata("rmi", `${reg.addr}/cli/img:v1`);
  t.regex(last, /Deleted: sha256:/);
  t.deepEqual(await chainIDsOf(s), [], "rmi of the last name released the layers");
  const bad = await t.throwsAsync(strata("save", "--format", "zip", "x", "-o", join(dir, "z")));
  t.is((bad as { code?: string }).code, "ERR_INVALID_ARGUMENT");
});
