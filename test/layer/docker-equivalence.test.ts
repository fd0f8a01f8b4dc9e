/**
 * Equivalence with Docker through the whole stack, per supported driver:
 * the Debian base image `docker save`d by the peer dockerd is applied with
 * `strata layer apply`; the same script changes a `docker run` container and
 * a `strata create`d one (init layer included, as Docker's); `strata diff`
 * must equal `docker diff` as sets, and the layer from `strata commit -o`
 * and the one from `docker commit`, each applied onto the base, must give
 * identical trees. Skips, saying why, without the peer dockerd.
 */
import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { applyLayer } from "../../src/diff/index.js";
import { strata } from "../helpers/cli.js";
import { BASE_IMAGE, dockerPeer, savedLayers } from "../helpers/docker.js";
import { supportedDrivers } from "../helpers/drivers.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";

const run = promisify(execFile);

/**
 * Run from the container's root in both worlds. It leaves the init files
 * alone: in a running Docker container /etc/hosts and friends are bind mounts
 * from the runtime, so writes to them never reach the container layer.
 */
const SCRIPT = `
set -e
echo changed >> etc/debian_version
chmod 640 etc/shadow
chown 1000:1000 etc/motd
rm etc/issue.net
rm -rf usr/share/doc/apt
rm -rf var/log && mkdir var/log && echo fresh > var/log/new
mv usr/share/doc/bash usr/share/doc/bash-moved
mkdir -p srv/app && head -c 200000 /dev/zero > srv/app/data
echo h > srv/h1 && ln srv/h1 srv/h2
ln -s ../etc/debian_version srv/link
`;

const peer = await dockerPeer();
const drivers = await supportedDrivers();
if ("reason" in peer) console.log(`docker equivalence skipped: ${peer.reason}`);

for (const name of drivers) {
  const maybe = "reason" in peer ? test.serial.skip : test.serial;
  maybe(`${name}: strata diff = docker diff, and the committed layers give identical trees`, async (t) => {
    if ("reason" in peer) return;
    const { docker } = peer;
    const work = await tempDir(t, "strata-dockereq-", "/var/tmp");
    const g = ["--root", join(work, "root"), "--driver", name];
    await mkdir(join(work, "base"));
    const layers = await savedLayers(join(work, "base"), BASE_IMAGE);
    let parent = "";
    for (const tar of layers) {
      const r = await strata([...g, "layer", "apply", tar, ...(parent ? ["--parent", parent] : [])]);
      t.is(r.code, 0, r.stderr);
      parent = r.stdout.trim();
    }

    const cname = `strata-eq-${process.pid}-${Date.now()}`;
    t.teardown(() => docker("rm", "-f", cname).catch(() => ""));
    await docker("run", "--name", cname, "--network", "none", "-w", "/", BASE_IMAGE, "sh", "-c", SCRIPT);
    t.is((await strata([...g, "create", "c", parent])).code, 0);
    const mp = (await strata([...g, "mount", "c"])).stdout.trim();
    try {
      await run("sh", ["-c", SCRIPT], { cwd: mp });
    } finally {
      await strata([...g, "unmount", "c"]);
    }

    const dockerSet = (await docker("diff", cname)).split("\n").filter(Boolean).sort();
    const diff = await strata([...g, "diff", "c"]);
    t.is(diff.code, 0, diff.stderr);
    const strataSet = diff.stdout.split("\n").filter(Boolean).sort();
    t.log(`docker diff ${dockerSet.length} entries, strata diff ${strataSet.length}`);
    t.deepEqual(strataSet, dockerSet);

    const tag = `strata-eq/${cname}:c`;
    t.teardown(() => docker("rmi", "-f", tag).catch(() => ""));
    await docker("commit", cname, tag);
    await mkdir(join(work, "commit"));
    const dockerLayer = (await savedLayers(join(work, "commit"), tag)).at(-1)!;
    const strataLayer = join(work, "strata-commit.tar");
    const commit = await strata([...g, "commit", "c", "eq-image", "-o", strataLayer]);
    t.is(commit.code, 0, commit.stderr);

    const trees: string[][] = [];
    for (const [i, top] of [dockerLayer, strataLayer].entries()) {
      const dir = join(work, `tree${i}`);
      await mkdir(dir);
      for (const l of layers) await applyLayer(dir, createReadStream(l));
      await applyLayer(dir, createReadStream(top));
      // Files the script wrote carry the second they were written, which differs between the runs.
      trees.push(await manifest(dir, { mtime: false, xattrs: "capability" }));
    }
    t.deepEqual(trees[1], trees[0]);
    t.is((await strata([...g, "rm", "c"])).code, 0);
  });
}
