/**
 * strata against the peer dockerd, as a docker user pipes them together:
 * `docker save | strata load` (plain and gzip, stdin, -i, a redirect),
 * `strata save | docker load` (plain and gzip) giving the same image ID,
 * and `strata images` lining up with `docker images` column for column.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { CLI, strata } from "../helpers/cli.js";
import { dockerPeer } from "../helpers/docker.js";
import { tempDir } from "../helpers/tmp.js";

const sh = (script: string) => promisify(execFile)("sh", ["-c", script], { maxBuffer: 1 << 26 });
const DOCKER = "docker -H unix:///run/peer-docker.sock";
const TINY = "peer/tiny:1";
const BASE = "peer/base:1";

/** Where each column of a tabwriter line starts (runs of 2+ spaces separate them). */
function columnStarts(line: string): number[] {
  const starts = [0];
  for (const m of line.matchAll(/ {2,}(?=\S)/g)) starts.push(m.index + m[0].length);
  return starts;
}

test("docker save | strata load, plain, gzipped, via -i and a redirect", async (t) => {
  const peer = await dockerPeer(TINY);
  if ("reason" in peer) return t.pass(`skipped: ${peer.reason}`);
  const dir = await tempDir(t, "strata-compat-");
  const root = join(dir, "root");
  const strataSh = `node ${CLI} --root ${root} --driver vfs`;
  const id = (await peer.docker("image", "inspect", "--format", "{{.Id}}", TINY)).trim();
  const piped = await sh(`${DOCKER} save ${TINY} | ${strataSh} load`);
  t.is(piped.stdout, `Loaded image: ${TINY}\n`);
  const gz = await sh(`${DOCKER} save ${TINY} | gzip | ${strataSh} load -i -`);
  t.is(gz.stdout, `Loaded image: ${TINY}\n`);
  await sh(`${DOCKER} save ${TINY} | gzip > ${dir}/tiny.tar.gz && ${DOCKER} save ${TINY} > ${dir}/tiny.tar`);
  t.is((await sh(`${strataSh} load -i ${dir}/tiny.tar.gz`)).stdout, `Loaded image: ${TINY}\n`);
  t.is((await sh(`${strataSh} load < ${dir}/tiny.tar`)).stdout, `Loaded image: ${TINY}\n`);
  const inspect = JSON.parse((await strata(["--root", root, "--driver", "vfs", "inspect", TINY])).stdout);
  t.is(inspect[0].Id, id, "the same image ID as docker's");
  t.is((await strata(["--root", root, "--driver", "vfs", "check"])).code, 0);
});

test("strata save | docker load, plain and gzipped, gives docker the same image", async (t) => {
  const peer = await dockerPeer(TINY);
  if ("reason" in peer) return t.pass(`skipped: ${peer.reason}`);
  const dir = await tempDir(t, "strata-compat-");
  const root = join(dir, "root");
  const g = ["--root", root, "--driver", "vfs"];
  const strataSh = `node ${CLI} ${g.join(" ")}`;
  await sh(`${DOCKER} save ${TINY} | ${strataSh} load -q`);
  const names = [`strata-save-${process.pid}-1:plain`, `strata-save-${process.pid}-2:gzip`];
  t.teardown(() => sh(`${DOCKER} rmi ${names.join(" ")} || true`));
  for (const n of names) t.is((await strata([...g, "tag", TINY, n])).code, 0);
  const plain = await sh(`${strataSh} save ${names[0]} | ${DOCKER} load`);
  t.regex(plain.stdout, new RegExp(`Loaded image: ${names[0]}`));
  const gz = await sh(`${strataSh} save ${names[1]} | gzip | ${DOCKER} load`);
  t.regex(gz.stdout, new RegExp(`Loaded image: ${names[1]}`));
  const want = (await peer.docker("image", "inspect", "--format", "{{.Id}}", TINY)).trim();
  for (const n of names) t.is((await peer.docker("image", "inspect", "--format", "{{.Id}}", n)).trim(), want);
  const tty = await sh(`script -qec "${strataSh} save ${names[0]}" /dev/null; echo "rc=$?"`);
  t.regex(tty.stdout, /refusing to write an archive to a terminal/, "save refuses a terminal as stdout");
});

test("strata images lines up with docker images column for column", async (t) => {
  const peer = await dockerPeer(BASE);
  if ("reason" in peer) return t.pass(`skipped: ${peer.reason}`);
  const dir = await tempDir(t, "strata-compat-");
  const root = join(dir, "root");
  const g = ["--root", root, "--driver", "overlay"];
  await sh(`${DOCKER} save ${BASE} ${TINY} | node ${CLI} ${g.join(" ")} load -q`);
  for (const args of [["images"], ["images", "--digests"], ["images", "peer/tiny"]]) {
    const [theirs, ours] = await Promise.all([
      peer
        .docker(...args, ...(args.length === 2 && !args[1]!.startsWith("-") ? [] : ["--filter", "reference=peer/*"]))
        .then((s) => s.trimEnd().split("\n")),
      strata([...g, ...args]).then((r) => r.stdout.trimEnd().split("\n")),
    ]);
    const want = theirs.filter((l, i) => i === 0 || /^peer\/(base|tiny) +1 /.test(l));
    t.is(ours[0], want[0], `${args.join(" ")}: the same header`);
    t.deepEqual(columnStarts(ours[0]!), columnStarts(want[0]!));
    for (const line of ours.slice(1)) {
      const cells = line.split(/ {2,}/);
      const match = want.find((w) => w.split(/ {2,}/).slice(0, 2).join(" ") === cells.slice(0, 2).join(" "));
      t.truthy(match, `${args.join(" ")}: docker lists ${line}`);
      // Same repository, tag, digest, id, age and size, in the same columns.
      t.deepEqual(cells, match!.split(/ {2,}/));
    }
  }
  const quiet = await strata([...g, "images", "-q"]);
  const dockerQuiet = [await peer.docker("images", "-q", BASE), await peer.docker("images", "-q", TINY)];
  t.deepEqual(quiet.stdout.trim().split("\n").sort(), dockerQuiet.map((s) => s.trim()).sort());
  const format = await strata([...g, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", TINY]);
  t.is(format.stdout, (await peer.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", TINY)) + "\n");
  const json = (await strata([...g, "images", "--format", "json", TINY])).stdout.trim();
  const theirs = JSON.parse((await peer.docker("images", "--format", "{{json .}}", TINY)).trim());
  const mine = JSON.parse(json);
  for (const k of ["ID", "Repository", "Tag", "Size", "CreatedSince", "CreatedAt"]) t.is(mine[k], theirs[k], k);
  const history = await strata([...g, "history", BASE]);
  t.is(history.stdout.trimEnd(), await peer.docker("history", BASE), "history: the same table");
});
