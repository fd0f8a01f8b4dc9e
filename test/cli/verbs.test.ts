/**
 * The docker verbs and flags strata adds, through the real command:
 * import/export, commit -m/-c printing the image id, history, rm of several,
 * ps -q, images -q/--format/--json (with sizes of shared layers), inspect's
 * array, system df, and --json output that is one JSON document.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { readTar } from "../helpers/tar-reader.js";
import { CLI, strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { createReadStream } from "node:fs";

const sh = (script: string) => promisify(execFile)("sh", ["-c", script], { maxBuffer: 1 << 26 });

/** Names of a tar's entries. */
async function entries(file: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of readTar(createReadStream(file))) {
    names.push(e.header.name);
    await e.skip();
  }
  return names;
}

test("import, create, commit -m -c, export, history, images --json sizes, rm of several, ps -q", async (t) => {
  const dir = await tempDir(t, "strata-verbs-");
  const g = ["--root", join(dir, "root"), "--driver", "overlay"];
  const run = async (...args: string[]) => {
    const r = await strata([...g, ...args]);
    t.is(r.code, 0, `strata ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const base = await makeTar([
    { name: "etc/" },
    { name: "etc/hostname", content: "base\n" },
    { name: "bin/" },
    { name: "bin/tool", content: "x".repeat(5000), mode: 0o755 },
  ]);
  await writeFile(join(dir, "base.tar"), base);
  // docker import: a flat tar (here gzipped, from stdin) becomes a one-layer image; the id is printed.
  const imported = await sh(
    `gzip -c ${dir}/base.tar | node ${CLI} ${g.join(" ")} import -m "from a tar" -c "ENV A=1" - base:1`,
  );
  t.regex(imported.stdout, /^sha256:[0-9a-f]{64}\n$/);
  // inspect prints docker's shape: Config is the run config, Comment the image's message.
  const [baseImage] = JSON.parse(await run("inspect", "base:1"));
  t.deepEqual(baseImage.Config.Env, ["A=1"]);
  t.is(baseImage.Comment, "from a tar");

  const idA = (await run("create", "a", "base:1")).trim();
  const idB = (await run("create", "b", "base:1")).trim();
  t.regex(idA, /^[0-9a-f]{64}$/, "create prints the container id");
  const mnt = (await run("mount", "a")).trim();
  await writeFile(join(mnt, "etc/hostname"), "changed\n");
  await writeFile(join(mnt, "new.txt"), "y".repeat(3000));
  const commitOut = await run(
    "commit",
    "-m",
    "my change",
    "-a",
    "Jane",
    "-c",
    'CMD ["/bin/tool"]',
    "-c",
    "EXPOSE 80",
    "a",
    "child:1",
  );
  t.regex(commitOut, /^sha256:[0-9a-f]{64}\n$/, "commit prints the image id");
  const childId = commitOut.trim();
  const images = JSON.parse(await run("--json", "images")) as Array<{
    Id: string;
    RepoTags: string[];
    Size: number;
    SharedSize: number;
    Containers: number;
  }>;
  const child = images.find((i) => i.RepoTags.includes("child:1"))!;
  const parent = images.find((i) => i.RepoTags.includes("base:1"))!;
  t.is(child.Id, childId, "the id commit printed is the one images lists");
  t.true(parent.Size >= 5005, "the base layer's size");
  t.is(child.Size, parent.Size + 3000 + "changed\n".length, "the shared base layer counts in the child's size");
  t.is(child.SharedSize, parent.Size);
  t.is(parent.Containers, 2);
  const [childImage] = JSON.parse(await run("inspect", childId));
  t.deepEqual(childImage.Config.Cmd, ["/bin/tool"]);
  t.deepEqual(childImage.Config.ExposedPorts, { "80/tcp": {} });
  t.deepEqual(childImage.Config.Env, ["A=1"], "the base config is kept");
  t.is(childImage.Author, "Jane");
  t.is(childImage.Comment, "my change");
  const history = await run("history", "--format", "{{.ID}}|{{.Comment}}|{{.Size}}", "child:1");
  t.deepEqual(history.trim().split("\n"), [
    `${childId.slice(7, 19)}|my change|3.01kB`,
    `<missing>|from a tar|${(await run("images", "--format", "{{.Size}}", "base:1")).trim()}`,
  ]);

  // docker export: the container's whole tree, to stdout or -o.
  await sh(`node ${CLI} ${g.join(" ")} export a > ${dir}/a.tar`);
  const names = await entries(join(dir, "a.tar"));
  for (const n of ["etc/hostname", "bin/tool", "new.txt", "etc/hosts"]) t.true(names.includes(n), n);
  await run("export", "-o", join(dir, "a2.tar"), idA.slice(0, 8));
  t.deepEqual(await entries(join(dir, "a2.tar")), names, "-o and an id prefix give the same tar");

  t.deepEqual((await run("ps", "-q")).trim().split("\n").sort(), [idA.slice(0, 12), idB.slice(0, 12)].sort());
  t.deepEqual((await run("ps", "--format", "{{.Names}} {{.Image}} {{.Status}}")).trim().split("\n"), [
    "a base:1 Mounted (1)",
    "b base:1 Created",
  ]);
  await run("unmount", "a");
  t.is(await run("rm", "a", idB.slice(0, 12)), `a\n${idB.slice(0, 12)}\n`, "rm removes several, by name or id");
  const partly = await strata([...g, "rm", "nope", "gone"]);
  t.is(partly.code, 1);
  t.is(partly.stderr.trim().split("\n").length, 2, "one line per container that failed");
  t.is(await run("ps", "-q"), "");
});

test("system df, --json documents and --format json lines", async (t) => {
  const dir = await tempDir(t, "strata-verbs-");
  const g = ["--root", join(dir, "root"), "--driver", "vfs"];
  const run = async (...args: string[]) => {
    const r = await strata([...g, ...args]);
    t.is(r.code, 0, `strata ${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  await writeFile(join(dir, "l.tar"), await makeTar([{ name: "f", content: "z".repeat(2000) }]));
  await run("import", join(dir, "l.tar"), "one:1");
  await run("tag", "one:1", "two:1");
  await run("create", "c", "one:1");
  const df = (await run("system", "df")).stdout.split("\n");
  t.is(df[0], "TYPE         TOTAL     ACTIVE    SIZE      RECLAIMABLE");
  t.regex(df[1]!, /^Images {7}1 {9}1 {9}2kB {7}0B \(0%\)$/);
  t.regex(df[2]!, /^Containers {3}1 {9}0 {9}\d+B/);
  const dfJson = JSON.parse((await run("--json", "system", "df")).stdout);
  t.deepEqual(dfJson[0], { Type: "Images", TotalCount: 1, Active: 1, Size: 2000, Reclaimable: 0 });
  // --format json: one object per row, docker's keys.
  const lines = (await run("images", "--format", "json")).stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  t.deepEqual(lines.map((l) => `${l.Repository}:${l.Tag}`).sort(), ["one:1", "two:1"]);
  t.deepEqual(Object.keys(lines[0]).sort(), [
    "Containers",
    "CreatedAt",
    "CreatedSince",
    "Digest",
    "ID",
    "Repository",
    "SharedSize",
    "Size",
    "Tag",
    "UniqueSize",
    "VirtualSize",
  ]);
  // --json: one document per command, also for load, commit, create, rmi.
  for (const args of [
    ["ps"],
    ["images"],
    ["layer", "ls"],
    ["diff", "c"],
    ["info"],
    ["inspect", "one:1"],
    ["history", "one:1"],
  ]) {
    const out = (await run("--json", ...args)).stdout;
    t.notThrows(() => JSON.parse(out), args.join(" "));
  }
  await run("save", "one:1", "-o", join(dir, "one.tar"));
  const load = await run("--json", "load", "-i", join(dir, "one.tar"));
  const loaded = JSON.parse(load.stdout) as Array<{ Id: string; RepoTags: string[] }>;
  t.is(loaded.length, 1);
  t.true(loaded[0]!.RepoTags.includes("one:1"));
  for (const l of load.stderr.trim().split("\n").filter(Boolean)) t.notThrows(() => JSON.parse(l), `stderr line ${l}`);
  const rmi = await run("--json", "rmi", "two:1");
  t.deepEqual(JSON.parse(rmi.stdout), [{ Untagged: "two:1" }]);
  t.is((await readFile(join(dir, "one.tar"))).subarray(257, 262).toString(), "ustar", "save -o wrote a tar");
});
