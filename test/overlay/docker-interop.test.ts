/**
 * Interop with Docker (dockerd 20.10, overlay2), side by side in one run:
 * the Debian base image `docker save`d and applied into strata overlay
 * layers, the same change script run in a docker container and in a strata
 * read-write layer, `driver.changes` compared with `docker diff` as sets,
 * and docker's committed layer and strata's diff tar each applied onto the
 * base and compared as tree manifests.
 *
 * Needs the peer lab through test/helpers/docker.ts (a dockerd it starts is
 * stopped by pid when the process exits) and the `peer/base:1` image
 * (make-base-image.sh). Without them it skips and says why.
 */
import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { createOverlay, type OverlayDriver } from "../../src/drivers/overlay/index.js";
import { BASE_IMAGE, type Docker, dockerPeer, savedLayers } from "../helpers/docker.js";
import { countedMounts } from "../helpers/mounts.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";

const run = promisify(execFile);

/** Paths are relative to the root, so the script runs the same in `docker run -w /` and in a host cwd. */
const SCRIPT = `
set -e
echo changed >> etc/debian_version
chmod 600 etc/shadow
chown 1000:1000 etc/motd
touch -d '2021-02-03 04:05:06' etc/issue
rm etc/issue.net
rm -rf usr/share/doc/apt
rm -rf var/log && mkdir var/log && echo fresh > var/log/new
mv usr/share/doc/bash usr/share/doc/bash-moved
rm usr/bin/yes && mkdir usr/bin/yes
mkdir -p new/deep && head -c 1048576 /dev/zero > new/deep/big
echo h > new/h1 && ln new/h1 new/h2
ln -s ../etc/debian_version new/link
mkfifo new/fifo
mknod new/null c 1 3
`;

const peer = await dockerPeer();
if ("reason" in peer) console.log(`docker interop skipped: ${peer.reason}`);
const maybe = "reason" in peer ? test.serial.skip : test.serial;
const docker: Docker = "reason" in peer ? () => Promise.reject(new Error(peer.reason)) : peer.docker;

maybe("overlay changes equal docker diff, and docker commit and strata diff give identical trees", async (t) => {
  const work = await tempDir(t, "strata-docker-", "/var/tmp");
  const root = await tempDir(t, "strata-ovl-docker-");
  const d = (await createOverlay({ root, options: {} })) as OverlayDriver;
  t.teardown(() => d.cleanup());
  const mounts = await countedMounts(t, d);

  // 1. The base image, as dockerd stores it, into strata layers.
  const baseDir = join(work, "base");
  await run("mkdir", [baseDir]);
  let parent = "";
  const layers = await savedLayers(baseDir, BASE_IMAGE);
  for (const [i, tar] of layers.entries()) {
    const id = `base${i}`;
    await d.create(id, parent);
    await mounts.applyDiff(id, parent, createReadStream(tar));
    parent = id;
  }
  const top = parent;

  // 2. The same script in a docker container and in a strata read-write layer.
  const name = `strata-interop-${process.pid}-${Date.now()}`;
  t.teardown(() => docker("rm", "-f", name).catch(() => ""));
  await docker("run", "--name", name, "--network", "none", "-w", "/", BASE_IMAGE, "sh", "-c", SCRIPT);
  await d.createReadWrite("ctr", top);
  const ctr = await mounts.acquire("ctr");
  try {
    await run("sh", ["-c", SCRIPT], { cwd: ctr });
  } finally {
    await mounts.release("ctr");
  }

  // 3. docker diff vs driver.changes, as sets.
  const dockerSet = new Set((await docker("diff", name)).split("\n").filter(Boolean));
  const strataSet = new Set((await mounts.changes("ctr", top)).map((c) => `${c.kind} ${c.path}`));
  t.log(`docker diff: ${dockerSet.size} entries, strata changes: ${strataSet.size}`);
  t.deepEqual([...strataSet].sort(), [...dockerSet].sort());

  // 4. docker commit's layer and strata's diff tar, each applied onto the base.
  const tag = `strata-interop/${name}:c`;
  t.teardown(() => docker("rmi", "-f", tag).catch(() => ""));
  await docker("commit", name, tag);
  const commitDir = join(work, "commit");
  await run("mkdir", [commitDir]);
  const committed = await savedLayers(commitDir, tag);
  t.is(committed.length, layers.length + 1);
  await d.create("from-docker", top);
  await mounts.applyDiff("from-docker", top, createReadStream(committed.at(-1)!));
  await d.create("from-strata", top);
  await mounts.applyDiff("from-strata", top, await mounts.diff("ctr", top));
  const a = await mounts.acquire("from-docker");
  const b = await mounts.acquire("from-strata");
  try {
    // Files the script wrote get the time they were written, which differs between the two runs.
    const opts = { mtime: false, xattrs: "capability" } as const;
    const [ma, mb] = [await manifest(a, opts), await manifest(b, opts)];
    t.log(`trees: ${ma.length} entries each side`);
    t.deepEqual(mb, ma);
    const issue = (m: string[]) => m.find((l) => l.startsWith("etc/issue "));
    t.truthy(issue(ma));
    const times = {
      mtime: "seconds",
      xattrs: "capability",
      exclude: (r: string) => r !== "etc" && r !== "etc/issue",
    } as const;
    t.deepEqual(
      (await manifest(b, times)).filter((l) => l.startsWith("etc/issue ")),
      (await manifest(a, times)).filter((l) => l.startsWith("etc/issue ")),
    );
  } finally {
    await mounts.release("from-docker");
    await mounts.release("from-strata");
  }
  t.is(await mounts.active(), 0);
});
