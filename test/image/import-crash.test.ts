/**
 * Imports (load, pull, commit) killed between registering their layers and
 * recording their image, with real `strata` processes on a real store (vfs
 * and overlay)
 * and a real registry: `strata check` reports the layers they leave (held by
 * a pending reference of a dead process), `check --repair` drops them or,
 * when the image record was written, gives them "image"; an import still
 * running in another process is not reported and finishes cleanly. The
 * imports run in `import-child.ts`, which stops them at an exact step of
 * their transaction with import hooks.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import test, { type ExecutionContext } from "ava";
import { fileURLToPath } from "node:url";
import { builtinDrivers } from "../../src/drivers/index.js";
import { chainIDs } from "../../src/image/index.js";
import { strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { writeFixtureLayout } from "./fixture.js";
import { skopeo, startRegistry } from "./peers.js";

interface Problem {
  kind: string;
  subject: string;
  detail: string;
}

/** A fresh store root and the global CLI arguments for it. */
async function store(t: ExecutionContext, driver: string) {
  const dir = await tempDir(t, "strata-impcrash-");
  const root = join(dir, "root");
  return { dir, root, g: ["--root", root, "--driver", driver] };
}

/** The layers the driver itself holds in the store at `root`. */
async function driverLayers(driver: string, root: string): Promise<string[]> {
  const d = await builtinDrivers().get(driver).factory({ root, options: {} });
  try {
    return await d.list();
  } finally {
    await d.close();
  }
}

const CHILD = fileURLToPath(new URL("./import-child.js", import.meta.url));

/**
 * Starts an import (`import-child.ts`: `load PATH TAG`, `pull REF` or
 * `commit CONTAINER TAG`) on the store at `root` that stops at hook
 * `point`, and resolves once it is stopped there. The child is SIGKILLed
 * at teardown if still running.
 */
async function startPaused(
  t: ExecutionContext,
  dir: string,
  point: "layersHeld" | "recordWritten",
  root: string,
  driver: string,
  args: string[],
) {
  const file = join(dir, `pause-${point}`);
  const child: ChildProcess = spawn(process.execPath, [CHILD, file, point, root, driver, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  for (let waited = 0; ; waited += 20) {
    if (
      await stat(file).then(
        () => true,
        () => false,
      )
    )
      break;
    if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited before pausing: ${out}`);
    if (waited > 120_000) throw new Error(`${args.join(" ")} did not pause: ${out}`);
    await sleep(20);
  }
  return {
    pid: child.pid!,
    output: () => out,
    async kill() {
      child.kill("SIGKILL");
      await exited;
    },
    async resume() {
      await rm(file);
      return exited;
    },
  };
}

async function checkJson(g: string[], repair = false): Promise<{ code: number; problems: Problem[] }> {
  const r = await strata([...g, "--json", "check", ...(repair ? ["--repair"] : [])]);
  return { code: r.code, problems: JSON.parse(r.stdout) as Problem[] };
}

async function layerIDs(g: string[]): Promise<string[]> {
  const ls = JSON.parse((await strata([...g, "--json", "layer", "ls"])).stdout) as Array<{ chainID: string }>;
  return ls.map((l) => l.chainID).sort();
}

/** The named references on a layer, read from the layerdb as any process would. */
async function refsOf(root: string, driver: string, chainID: string): Promise<string[]> {
  const names = await readdir(join(root, "layerdb", driver, "sha256", chainID.slice(7), "refs"));
  return names.map((n) => decodeURIComponent(n)).sort();
}

for (const name of ["vfs", "overlay"]) {
  test(`${name}: a load killed before its image record: check reports the layers, --repair removes them`, async (t) => {
    const { dir, root, g } = await store(t, name);
    const fx = await writeFixtureLayout(join(dir, "fx"), "v1", 41);
    const chains = chainIDs(fx.diffIDs);
    const p = await startPaused(t, dir, "layersHeld", root, name, ["load", fx.dir, "crash/a:1"]);
    for (const c of chains)
      t.regex((await refsOf(root, name, c)).join(), new RegExp(`^image-pending:${p.pid}:\\d+:[0-9a-f]+$`));
    await p.kill();

    const found = await checkJson(g);
    t.is(found.code, 1, "problems make check fail");
    t.deepEqual(found.problems.map((x) => x.kind).sort(), ["dead-import-ref", "dead-import-ref", "dead-import-ref"]);
    t.deepEqual(found.problems.map((x) => x.subject).sort(), [...chains].sort());
    t.true(found.problems.every((x) => x.detail.includes("no image uses it")));

    const repaired = await strata([...g, "check", "--repair"]);
    t.is(repaired.code, 0, repaired.stderr);
    t.is(repaired.stdout.match(/^repaired: dead-import-ref /gm)?.length, 3);
    const again = await strata([...g, "check"]);
    t.is(again.code, 0);
    t.regex(again.stdout, /store is consistent/);
    t.deepEqual(await layerIDs(g), [], "the leaked layers are deleted");
    t.deepEqual(await driverLayers(name, root), [], "and their driver layers");
  });

  test(`${name}: a load killed after its image record: --repair keeps the layers for the image`, async (t) => {
    const { dir, root, g } = await store(t, name);
    const fx = await writeFixtureLayout(join(dir, "fx"), "v1", 42);
    const chains = chainIDs(fx.diffIDs);
    const p = await startPaused(t, dir, "recordWritten", root, name, ["load", fx.dir, "crash/b:1"]);
    await p.kill();

    const found = await checkJson(g);
    t.is(found.code, 1);
    t.deepEqual(found.problems.map((x) => x.subject).sort(), [...chains].sort());
    t.true(found.problems.every((x) => x.kind === "dead-import-ref" && x.detail.includes("an image uses it")));
    t.deepEqual((await checkJson(g, true)).problems.length, 3);
    t.deepEqual(await checkJson(g), { code: 0, problems: [] }, "clean after one repair");
    t.deepEqual(await layerIDs(g), [...chains].sort());
    for (const c of chains) t.deepEqual(await refsOf(root, name, c), ["image"]);
    const images = JSON.parse((await strata([...g, "--json", "images"])).stdout) as Array<{ id: string }>;
    t.deepEqual(
      images.map((i) => i.id),
      [fx.configDigest],
    );
    // The repaired image is an ordinary one: rmi takes its layers with it.
    t.is((await strata([...g, "rmi", "crash/b:1"])).code, 0);
    t.deepEqual(await layerIDs(g), []);
    t.regex((await strata([...g, "check"])).stdout, /store is consistent/);
  });

  test(`${name}: a pull killed before its image record: check reports the layers, --repair removes them`, async (t) => {
    const reg = await startRegistry(t);
    const { dir, root, g } = await store(t, name);
    const fx = await writeFixtureLayout(join(dir, "fx"), "v1", 45);
    await skopeo("copy", `oci:${fx.dir}:v1`, `docker://${reg.addr}/crash/pull:v1`, "--dest-tls-verify=false");
    const p = await startPaused(t, dir, "layersHeld", root, name, ["pull", `${reg.addr}/crash/pull:v1`]);
    await p.kill();
    const found = await checkJson(g);
    t.is(found.code, 1);
    t.deepEqual(found.problems.map((x) => `${x.kind} ${x.subject}`).sort(), [
      ...chainIDs(fx.diffIDs)
        .map((c) => `dead-import-ref ${c}`)
        .sort(),
    ]);
    t.is((await checkJson(g, true)).problems.length, 3);
    t.deepEqual(await checkJson(g), { code: 0, problems: [] });
    t.deepEqual(await layerIDs(g), []);
    // The pull, run again to the end, stores the image as if nothing had happened.
    const again = await strata([...g, "pull", "-q", `${reg.addr}/crash/pull:v1`]);
    t.is(again.code, 0, again.stderr);
    t.deepEqual(await layerIDs(g), [...chainIDs(fx.diffIDs)].sort());
    t.deepEqual(await checkJson(g), { code: 0, problems: [] });
  });

  test(`${name}: an import in progress in a live process is not reported, not pruned, and finishes cleanly`, async (t) => {
    const { dir, root, g } = await store(t, name);
    const fx = await writeFixtureLayout(join(dir, "fx"), "v1", 43);
    const chains = chainIDs(fx.diffIDs);
    const p = await startPaused(t, dir, "layersHeld", root, name, ["load", fx.dir, "crash/c:1"]);
    // Each of these opens the store, so the open-time recovery runs too.
    const chk = await strata([...g, "check"]);
    t.is(chk.code, 0, chk.stdout);
    t.regex(chk.stdout, /store is consistent/);
    const prune = await strata([...g, "prune"]);
    t.is(prune.code, 0, prune.stderr);
    t.is(prune.stdout, "", "prune deletes nothing a live import holds");
    t.deepEqual(await layerIDs(g), [...chains].sort());
    for (const c of chains) t.regex((await refsOf(root, name, c)).join(), new RegExp(`^image-pending:${p.pid}:`));

    t.is(await p.resume(), 0, p.output());
    t.regex(p.output(), new RegExp(`^loaded ${fx.configDigest}$`, "m"));
    for (const c of chains) t.deepEqual(await refsOf(root, name, c), ["image"], "pending ref traded for image");
    t.deepEqual(await checkJson(g), { code: 0, problems: [] });
  });

  test(`${name}: a commit killed before its image record: the new layer goes, the base stays`, async (t) => {
    const { dir, root, g } = await store(t, name);
    await writeFile(join(dir, "base.tar"), await makeTar([{ name: "etc/" }, { name: "etc/os", content: "base" }]));
    const base = (await strata([...g, "layer", "apply", join(dir, "base.tar")])).stdout.trim();
    t.regex(base, /^sha256:/);
    t.is((await strata([...g, "create", "--no-init", "c1", base])).code, 0);
    const mp = (await strata([...g, "mount", "c1"])).stdout.trim();
    await writeFile(join(mp, "added"), "by the container");
    t.is((await strata([...g, "unmount", "c1"])).code, 0);

    const p = await startPaused(t, dir, "layersHeld", root, name, ["commit", "c1", "crash/commit:1"]);
    const top = (await layerIDs(g)).find((c) => c !== base);
    t.truthy(top, "the commit registered its layer");
    await p.kill();

    const found = await checkJson(g);
    t.is(found.code, 1);
    t.deepEqual(found.problems.map((x) => `${x.kind} ${x.subject}`).sort(), [
      ...[base, top].map((c) => `dead-import-ref ${c}`).sort(),
    ]);
    t.is((await checkJson(g, true)).problems.length, 2);
    t.deepEqual(await checkJson(g), { code: 0, problems: [] });
    t.deepEqual(await layerIDs(g), [base], "the committed layer is gone, the container's base stays");
    t.deepEqual(await refsOf(root, name, base), ["user"]);

    // The same commit, not interrupted, records an image on the same chain.
    const again = await strata([...g, "commit", "c1", "crash/commit:1"]);
    t.is(again.code, 0, again.stderr);
    const images = JSON.parse((await strata([...g, "--json", "images"])).stdout) as Array<{ id: string }>;
    t.deepEqual(
      [again.stdout.trim()],
      images.map((i) => i.id),
      "commit prints the image ID that images lists",
    );
    const committed = (await layerIDs(g)).find((c) => c !== base)!;
    t.deepEqual(await refsOf(root, name, committed), ["image"]);
    t.deepEqual(await refsOf(root, name, base), ["image", "user"], "the whole chain of the image is held by image");
    t.deepEqual(await checkJson(g), { code: 0, problems: [] });
  });

  test(`${name}: stores from before pending references: unused and missing image refs are found and fixed`, async (t) => {
    const { dir, root, g } = await store(t, name);
    const fx = await writeFixtureLayout(join(dir, "fx"), "v1", 44);
    const chains = chainIDs(fx.diffIDs);
    t.is((await strata([...g, "load", "-q", "-t", "old/a:1", fx.dir])).code, 0);
    await writeFile(join(dir, "user.tar"), await makeTar([{ name: "u/" }, { name: "u/f", content: "user" }]));
    const user = (await strata([...g, "layer", "apply", join(dir, "user.tar")])).stdout.trim();
    // What older strata left on disk: "image" on a layer of no image, none on a reused image layer.
    const refs = (c: string) => join(root, "layerdb", name, "sha256", c.slice(7), "refs");
    await writeFile(join(refs(user), "image"), "");
    await rm(join(refs(chains[0]), "image"));

    const found = await checkJson(g);
    t.is(found.code, 1);
    t.deepEqual(found.problems.map((x) => `${x.kind} ${x.subject}`).sort(), [
      `image-layer-unheld ${chains[0]}`,
      `unused-image-ref ${user}`,
    ]);
    t.is((await checkJson(g, true)).problems.length, 2);
    t.deepEqual(await checkJson(g), { code: 0, problems: [] });
    t.deepEqual(await refsOf(root, name, user), ["user"]);
    t.deepEqual(await refsOf(root, name, chains[0]), ["image"]);
  });
}
