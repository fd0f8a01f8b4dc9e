/**
 * dockerd on `strata serve --docker-plugin`, the same scenarios on every
 * driver (one test file per driver calls {@link dockerScenarios}): images in
 * (load, pull), containers run, a change shown and committed as dockerd's own
 * overlay2 does it, saved and loaded into that dockerd with the same diff IDs,
 * everything removed without leftovers; a SIGKILL of serve under a running
 * container; a SIGKILL of dockerd in the middle of a pull.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { dockerPeer } from "../helpers/docker.js";
import { tempDir } from "../helpers/tmp.js";
import { mountsUnder } from "../../src/util/mountinfo.js";
import { type Dockerd, type Serve, sleep, startDockerd, startServe, uniqueName } from "./engines.js";
import { dockerHolds, layerFacts, leftovers, savedLayerFiles } from "./layers.js";
import { ARTIFACTS, missingPeers, registryImages, stopRegistry } from "./peers.js";

/** A change touching every kind of entry but an opaque directory (naive drivers write those as per-child whiteouts, as Docker's do). */
const CHANGE = [
  "set -e",
  "mkdir -p /data/sub",
  "echo hello > /data/sub/f",
  "ln /data/sub/f /data/hard",
  "ln -s sub/f /data/link",
  "echo more >> /etc/motd",
  "chmod 600 /etc/issue.net",
  "chown 1000:1000 /etc/group",
  "rm /etc/debian_version",
  "rm -rf /usr/share/man",
  "rm /bin/ls",
].join("; ");

async function engines(t: ExecutionContext, driver: string): Promise<{ serve: Serve; dockerd: Dockerd; dir: string }> {
  const dir = await tempDir(t, "strata-serve-");
  await mkdir(join(dir, "dockerd"));
  const serve = await startServe(t, dir, driver);
  const dockerd = await startDockerd(t, join(dir, "dockerd"), serve.name);
  return { serve, dockerd, dir };
}

/** After dockerd removed everything and both stopped: nothing of the root is left. */
async function assertNothingLeft(t: ExecutionContext, serve: Serve, dockerd: Dockerd): Promise<void> {
  await dockerd.stop();
  await serve.stop();
  const left = await leftovers(serve.root, serve.driver);
  t.deepEqual(left, {
    layers: [],
    thinDevices: [],
    overlayLinks: [],
    holds: [],
    pending: [],
    mounts: [],
    loops: [],
  });
}

export function dockerScenarios(driver: string): void {
  const missing = missingPeers();
  if (missing) {
    test(`${driver}: dockerd on strata serve`, (t) => t.pass(`skipped: ${missing}`));
    return;
  }
  test.after.always(() => stopRegistry());

  test.serial(
    `${driver}: dockerd loads, pulls, runs, diffs and commits as on overlay2; save loads into overlay2 with the same diff IDs; rm/rmi leave nothing`,
    async (t) => {
      const peer = await dockerPeer("peer/tiny:1");
      if ("reason" in peer) return t.pass(`skipped: ${peer.reason}`);
      const images = await registryImages();
      const { serve, dockerd, dir } = await engines(t, driver);
      const d = dockerd.docker;

      await d("load", "-i", join(ARTIFACTS, "base-docker-archive.tar"));
      t.regex(await d("run", "--rm", "peer/base:1", "cat", "/etc/os-release"), /Debian GNU\/Linux 12/);
      await d("pull", images.tiny!);
      t.is(
        await d("run", "--rm", images.tiny!, "cat", "/etc/motd"),
        await peer.docker("run", "--rm", "peer/tiny:1", "cat", "/etc/motd"),
      );

      // The same change in a container on strata and on the peer's overlay2.
      const name = uniqueName("serve");
      await d("run", "--name", name, images.tiny!, "sh", "-c", CHANGE);
      await peer.docker("run", "--name", name, "peer/tiny:1", "sh", "-c", CHANGE);
      t.teardown(() => peer.docker("rm", "-f", name).catch(() => ""));
      const ours = (await d("diff", name)).split("\n").sort();
      t.deepEqual(ours, (await peer.docker("diff", name)).split("\n").sort(), "docker diff");
      t.true(ours.includes("D /bin/ls") && ours.includes("A /data/sub/f"), ours.join(","));

      const tag = `${name}:c`;
      await d("commit", name, tag);
      await peer.docker("commit", name, `${name}:peer`);
      t.teardown(() => peer.docker("rmi", "-f", tag, `${name}:peer`).catch(() => ""));
      await d("save", "-o", join(dir, "ours.tar"), tag);
      await peer.docker("save", "-o", join(dir, "peer.tar"), `${name}:peer`);
      await mkdir(join(dir, "ours"));
      await mkdir(join(dir, "peer"));
      const ourLayers = await savedLayerFiles(join(dir, "ours.tar"), join(dir, "ours"));
      const peerLayers = await savedLayerFiles(join(dir, "peer.tar"), join(dir, "peer"));
      t.deepEqual(await layerFacts(ourLayers.at(-1)!), await layerFacts(peerLayers.at(-1)!), "committed layer");

      // Our commit, saved, loads into dockerd's own overlay2 with the same diff IDs.
      await peer.docker("load", "-i", join(dir, "ours.tar"));
      const rootfs = (docker: typeof d) => docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tag);
      t.is(await rootfs(peer.docker), await rootfs(d));

      // A running container can be read (Diff/Changes of a mounted layer do not unmount it).
      const bg = uniqueName("serve");
      await d("run", "-d", "--name", bg, images.tiny!, "sleep", "600");
      await d("exec", bg, "sh", "-c", "echo live > /tmp/live");
      t.deepEqual((await d("diff", bg)).split("\n").sort(), ["A /tmp/live", "C /tmp"]);
      t.is(await d("exec", bg, "cat", "/tmp/live"), "live", "still mounted after docker diff");

      await d("rm", "-f", name, bg);
      await d("rmi", tag, images.tiny!, "peer/base:1");
      t.is(await d("images", "-q"), "");
      await assertNothingLeft(t, serve, dockerd);
    },
  );

  test.serial(
    `${driver}: a container keeps running across a SIGKILL of strata serve; the counts survive, a Put after the restart unmounts, Get/Put and rm work`,
    async (t) => {
      const { serve, dockerd } = await engines(t, driver);
      const d = dockerd.docker;
      await d("load", "-i", join(ARTIFACTS, "tiny-docker-archive.tar"));
      const name = uniqueName("serve");
      await d("run", "-d", "--name", name, "peer/tiny:1", "sh", "-c", "echo before > /before; sleep 600");
      const pid = Number(await d("inspect", "--format", "{{.State.Pid}}", name));
      const inside = (path: string) => readFile(`/proc/${pid}/root${path}`, "utf8").catch(() => "");
      for (let i = 0; i < 200 && (await inside("/before")) === ""; i++) await sleep(25);
      t.is(await inside("/before"), "before\n");
      const mounted = (await mountsUnder(serve.root)).sort();
      const holds = await dockerHolds(serve.root, driver);
      const [layer, ...more] = Object.keys(holds);
      t.truthy(layer, "dockerd holds the container's layer");
      t.deepEqual(more, [], "and nothing else");
      t.is(holds[layer!], 1);

      await serve.stop("SIGKILL");
      // Without the plugin dockerd cannot even exec (it asks for the layer's metadata), but
      // the container runs on and its tree stays readable and writable.
      await sleep(500);
      t.is(await inside("/before"), "before\n", "the container runs on without serve");
      await writeFile(`/proc/${pid}/root/during`, "during\n");

      await serve.start();
      t.regex(await serve.log(), /store open .*holds=[1-9]/, "the restart found dockerd's holds");
      t.deepEqual((await mountsUnder(serve.root)).sort(), mounted, "the restart unmounted nothing");
      t.is(await d("exec", name, "cat", "/during"), "during");
      t.deepEqual((await d("diff", name)).split("\n").sort(), ["A /before", "A /during"]);
      t.deepEqual((await mountsUnder(serve.root)).sort(), mounted, "docker diff after the restart unmounted nothing");
      t.deepEqual(await dockerHolds(serve.root, driver), holds, "the counts are the ones before the kill");

      // The Put of the Get made before the kill releases it: the layer is unmounted.
      const layerMounted = async () => (await mountsUnder(serve.root)).some((m) => m.includes(layer!));
      await d("stop", "-t", "1", name);
      t.deepEqual(await dockerHolds(serve.root, driver), {}, "docker stop put the layer");
      t.false(await layerMounted(), "and it is unmounted");
      // A Get and Put after the restart count as before.
      await d("start", name);
      t.deepEqual(await dockerHolds(serve.root, driver), holds);
      t.is(await d("exec", name, "cat", "/during"), "during");
      await d("stop", "-t", "1", name);
      t.deepEqual(await dockerHolds(serve.root, driver), {});
      t.false(await layerMounted());
      await d("rm", name);
      await d("rmi", "peer/tiny:1");
      await assertNothingLeft(t, serve, dockerd);
    },
  );

  test.serial(`${driver}: dockerd killed in the middle of a pull loses nothing and leaks nothing`, async (t) => {
    const images = await registryImages();
    const { serve, dockerd } = await engines(t, driver);
    const d = dockerd.docker;
    const pendingDir = join(serve.root, "serve", driver, "docker", "pending");
    const pull = d("pull", images.base!).then(
      () => "finished",
      () => "failed",
    );
    let outcome = "";
    void pull.then((o) => (outcome = o));
    // Kill dockerd while a layer is created and being filled. The download before it
    // takes a while on a loaded machine: wait for the pull itself, not a fixed count.
    let killed = false;
    for (const until = Date.now() + 180_000; !killed && !outcome && Date.now() < until;) {
      const pending = await readdir(pendingDir).catch(() => []);
      if (pending.some((n) => !n.startsWith("."))) {
        await dockerd.crash();
        killed = true;
      } else await sleep(10);
    }
    t.true(killed, `a layer was pending at some point (the pull: ${outcome || "still running after 180 s"})`);
    t.is(await pull, "failed");
    await dockerd.start();
    t.deepEqual(await readdir(pendingDir), [], "dockerd's Init removed the half-made layer");
    await d("pull", images.base!);
    t.regex(await d("run", "--rm", images.base!, "cat", "/etc/os-release"), /Debian/);
    await d("rmi", images.base!);
    await assertNothingLeft(t, serve, dockerd);
  });
}
