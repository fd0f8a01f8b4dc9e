/**
 * containerd's snapshotter contract, through the gRPC wire of the
 * snapshotter server, on the vfs and overlay drivers (devmapper runs the
 * same paths in containerd.test.ts): lifecycle with real mounts of what
 * `Mounts` returns, error classes, labels and update masks, filters, usage,
 * concurrency, crash leftovers, and a damaged or busy store.
 */
import test, { type ExecutionContext } from "ava";
import * as grpc from "@grpc/grpc-js";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { builtinDrivers } from "../../src/drivers/index.js";
import type { Driver, MountSpec } from "../../src/graphdriver/driver.js";
import { startSnapshotter, type SnapshotterServer } from "../../src/serve/containerd/index.js";
import { strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { mountSpecs } from "../helpers/mounts.js";
import { tempDir } from "../helpers/tmp.js";
import { snapshotsClient, type SnapshotsClient } from "./containerd-helpers.js";

interface Setup {
  dir: string;
  driver: Driver;
  server: SnapshotterServer;
  client: SnapshotsClient;
  logs: string[];
}

let socketSeq = 0;

async function setup(t: ExecutionContext, name: string, dir?: string): Promise<Setup> {
  dir ??= await tempDir(t, "strata-ctd-contract-");
  const driver = await builtinDrivers().select(name, { root: join(dir, "store"), options: {} });
  t.teardown(() => driver.cleanup());
  const logs: string[] = [];
  const socket = join(dir, `s${socketSeq++}.sock`);
  const server = await startSnapshotter({
    driver,
    stateDir: join(dir, "store", "containerd"),
    socket,
    log: (l) => logs.push(l),
  });
  t.teardown(() => server.close());
  const client = snapshotsClient(socket);
  t.teardown(() => client.close());
  return { dir, driver, server, client, logs };
}

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return "OK";
  } catch (err) {
    return grpc.status[(err as grpc.ServiceError).code];
  }
};

type Mounts = { mounts: MountSpec[] };

for (const name of ["vfs", "overlay"]) {
  test(`${name}: Prepare, Commit, View and Mounts give the trees containerd expects`, async (t) => {
    const { dir, client } = await setup(t, name);
    const base = await client.call<Mounts>("Prepare", { key: "k1", parent: "", labels: {} });
    t.deepEqual(
      base.mounts.map((m) => [m.type, m.options]),
      [["bind", ["rbind", "rw"]]],
    );
    let umount = await mountSpecs(base.mounts, join(dir, "m1"));
    await writeFile(join(dir, "m1", "one"), "1");
    await umount();
    await client.call("Commit", { name: "n1", key: "k1", labels: {} });

    const child = await client.call<Mounts>("Prepare", { key: "k2", parent: "n1", labels: {} });
    if (name === "overlay") {
      const opts = child.mounts[0]!.options;
      t.is(child.mounts[0]!.type, "overlay");
      t.true(opts.some((o) => o.startsWith("upperdir=")) && opts.some((o) => o.startsWith("lowerdir=")));
    }
    umount = await mountSpecs(child.mounts, join(dir, "m2"));
    t.is(await readFile(join(dir, "m2", "one"), "utf8"), "1");
    await writeFile(join(dir, "m2", "two"), "2");
    await umount();
    t.deepEqual(await client.call<Mounts>("Mounts", { key: "k2" }), child);
    await client.call("Commit", { name: "n2", key: "k2", labels: {} });

    const view = await client.call<Mounts>("View", { key: "v", parent: "n2", labels: {} });
    umount = await mountSpecs(view.mounts, join(dir, "m3"));
    try {
      t.is(await readFile(join(dir, "m3", "one"), "utf8"), "1");
      t.is(await readFile(join(dir, "m3", "two"), "utf8"), "2");
      await t.throwsAsync(writeFile(join(dir, "m3", "three"), "3"), { code: "EROFS" });
    } finally {
      await umount();
    }
    const stat = await client.call<{ info: { kind: string; parent: string } }>("Stat", { key: "v" });
    t.like(stat.info, { kind: "VIEW", parent: "n2" });
  });

  test(`${name}: errors carry the gRPC codes containerd's errdefs expects`, async (t) => {
    const { client } = await setup(t, name);
    await client.call("Prepare", { key: "a", parent: "", labels: {} });
    t.is(await codeOf(client.call("Prepare", { key: "a", parent: "", labels: {} })), "ALREADY_EXISTS");
    t.is(await codeOf(client.call("View", { key: "a", parent: "", labels: {} })), "ALREADY_EXISTS");
    t.is(await codeOf(client.call("Prepare", { key: "b", parent: "nope", labels: {} })), "NOT_FOUND");
    t.is(await codeOf(client.call("Prepare", { key: "b", parent: "a", labels: {} })), "INVALID_ARGUMENT");
    t.is(await codeOf(client.call("Prepare", { key: "", parent: "", labels: {} })), "INVALID_ARGUMENT");
    t.is(
      await codeOf(client.call("Prepare", { key: "b", parent: "", labels: { k: "v".repeat(5000) } })),
      "INVALID_ARGUMENT",
    );
    await client.call("Commit", { name: "c", key: "a", labels: {} });
    t.is(await codeOf(client.call("Stat", { key: "a" })), "NOT_FOUND");
    t.is(await codeOf(client.call("Mounts", { key: "c" })), "FAILED_PRECONDITION");
    await client.call("View", { key: "v", parent: "c", labels: {} });
    t.is(await codeOf(client.call("Commit", { name: "c2", key: "v", labels: {} })), "FAILED_PRECONDITION");
    await client.call("Prepare", { key: "p", parent: "c", labels: {} });
    t.is(await codeOf(client.call("Commit", { name: "c", key: "p", labels: {} })), "ALREADY_EXISTS");
    t.is(await codeOf(client.call("Commit", { name: "c3", key: "gone", labels: {} })), "NOT_FOUND");
    t.is(await codeOf(client.call("Remove", { key: "c" })), "FAILED_PRECONDITION");
    t.is(await codeOf(client.call("Remove", { key: "gone" })), "NOT_FOUND");
    const info = { name: "c", parent: "x", kind: "COMMITTED", labels: {} };
    t.is(await codeOf(client.call("Update", { info, updateMask: { paths: ["parent"] } })), "INVALID_ARGUMENT");
    t.is(await codeOf(client.list(['labels."unterminated'])), "INVALID_ARGUMENT");
    // Children first, then the parent: everything goes.
    for (const key of ["v", "p", "c"]) await client.call("Remove", { key });
    t.deepEqual(await client.list(), []);
  });

  test(`${name}: labels: commit replaces them, Update follows the field mask`, async (t) => {
    const { client } = await setup(t, name);
    await client.call("Prepare", { key: "k", parent: "", labels: { a: "1" } });
    await client.call("Commit", { name: "n", key: "k", labels: { b: "2", c: "3" } });
    type Info = {
      info: {
        labels: Record<string, string>;
        createdAt: { seconds: number };
        updatedAt: { seconds: number; nanos: number };
      };
    };
    const before = await client.call<Info>("Stat", { key: "n" });
    t.deepEqual(before.info.labels, { b: "2", c: "3" });
    await new Promise((r) => setTimeout(r, 20));
    const info = (labels: Record<string, string>) => ({ name: "n", labels });
    let r = await client.call<Info>("Update", {
      info: info({ b: "20", d: "4" }),
      updateMask: { paths: ["labels.b", "labels.c"] },
    });
    t.deepEqual(r.info.labels, { b: "20" });
    t.deepEqual(r.info.createdAt, before.info.createdAt);
    const ns = (x: { seconds: number; nanos: number }) => x.seconds * 1e9 + x.nanos;
    t.true(ns(r.info.updatedAt) > ns(before.info.updatedAt));
    r = await client.call<Info>("Update", { info: info({ x: "1" }), updateMask: { paths: [] } });
    t.deepEqual(r.info.labels, { x: "1" });
    r = await client.call<Info>("Update", { info: info({ y: "2" }), updateMask: { paths: ["labels"] } });
    t.deepEqual((await client.call<Info>("Stat", { key: "n" })).info.labels, { y: "2" });
  });

  test(`${name}: List streams every snapshot and honours containerd filters`, async (t) => {
    const { client } = await setup(t, name);
    await client.call("Prepare", { key: "default/1/base", parent: "", labels: {} });
    await client.call("Commit", {
      name: "default/2/base",
      key: "default/1/base",
      labels: { "containerd.io/gc.root": "x" },
    });
    await client.call("Prepare", { key: "default/3/run", parent: "default/2/base", labels: { "a.b": "1" } });
    await client.call("View", { key: "other/4/view", parent: "default/2/base", labels: {} });
    const names = async (...f: string[]) => (await client.list(f)).map((i) => i.name);
    t.deepEqual(await names(), ["default/2/base", "default/3/run", "other/4/view"]);
    t.deepEqual(await names("kind==committed"), ["default/2/base"]);
    t.deepEqual(await names('labels."containerd.io/gc.root"'), ["default/2/base"]);
    t.deepEqual(await names('labels."a.b"==1', "kind==view"), ["default/3/run", "other/4/view"]);
    t.deepEqual(await names("name~=^default/,parent==default/2/base"), ["default/3/run"]);
    t.deepEqual(await names("kind!=committed,name~=/view$/"), ["other/4/view"]);
  });

  test(`${name}: Usage measures an active snapshot and remembers a committed one`, async (t) => {
    const { dir, client } = await setup(t, name);
    const m = await client.call<Mounts>("Prepare", { key: "k", parent: "", labels: {} });
    const umount = await mountSpecs(m.mounts, join(dir, "m"));
    await writeFile(join(dir, "m", "f"), Buffer.alloc(1 << 20, 1));
    await umount();
    const u = await client.call<{ size: number; inodes: number }>("Usage", { key: "k" });
    t.true(u.size >= 1 << 20 && u.size < 2 << 20, String(u.size));
    t.is(u.inodes, 2);
    await client.call("Commit", { name: "n", key: "k", labels: {} });
    t.deepEqual(await client.call("Usage", { key: "n" }), u);
    await client.call("View", { key: "v", parent: "n", labels: {} });
    t.deepEqual(await client.call("Usage", { key: "v" }), { size: 0, inodes: 0 });
    t.is(await codeOf(client.call("Usage", { key: "gone" })), "NOT_FOUND");
  });

  test(`${name}: concurrent requests on one key or one parent stay consistent`, async (t) => {
    const { driver, client } = await setup(t, name);
    const same = await Promise.all(
      Array.from({ length: 8 }, () => codeOf(client.call("Prepare", { key: "k", parent: "", labels: {} }))),
    );
    t.is(same.filter((c) => c === "OK").length, 1);
    t.is(same.filter((c) => c === "ALREADY_EXISTS").length, 7);
    await client.call("Commit", { name: "p", key: "k", labels: {} });
    const children = Array.from({ length: 8 }, (_, i) =>
      codeOf(client.call("Prepare", { key: `c${i}`, parent: "p", labels: {} })),
    );
    const removal = codeOf(client.call("Remove", { key: "p" }));
    const [codes, removed] = [await Promise.all(children), await removal];
    // Either the removal came first (every child then misses its parent) or it found children.
    if (removed === "OK") t.deepEqual([...new Set(codes)], ["NOT_FOUND"]);
    else {
      t.is(removed, "FAILED_PRECONDITION");
      t.false(codes.includes("NOT_FOUND"));
    }
    const left = await client.list();
    t.is((await driver.list()).length, left.length);
  });

  test(`${name}: a layer without a record (a crash between the steps) is swept at start; others are kept`, async (t) => {
    const first = await setup(t, name);
    await first.client.call("Prepare", { key: "k", parent: "", labels: {} });
    await first.driver.create("ctd-0123456789abcdef0123456789abcdef", "");
    await first.driver.create("not-mine", "");
    await first.server.close();
    const again = await setup(t, name, first.dir);
    const ids = await again.driver.list();
    t.false(ids.includes("ctd-0123456789abcdef0123456789abcdef"));
    t.true(ids.includes("not-mine"));
    t.is(ids.filter((i) => i.startsWith("ctd-")).length, 1);
    t.is((await again.client.list()).length, 1);
    t.deepEqual(await again.server.snapshotter.cleanup(), []);
  });
}

test("a damaged metadata file stops the start with ERR_SNAPSHOT_METADATA and is left as it was", async (t) => {
  const dir = await tempDir(t, "strata-ctd-hostile-");
  const driver = await builtinDrivers().select("vfs", { root: join(dir, "store"), options: {} });
  const state = join(dir, "store", "containerd");
  await mkdir(state, { recursive: true });
  const rec = (o: object) => ({
    id: "ctd-0123456789abcdef0123456789abcdef",
    kind: "committed",
    parent: "",
    labels: {},
    created: 1,
    updated: 1,
    ...o,
  });
  const bad = [
    "{not json",
    JSON.stringify({ version: 2, snapshots: {} }),
    JSON.stringify({ version: 1, snapshots: { a: rec({ parent: "missing" }) } }),
    JSON.stringify({ version: 1, snapshots: { a: rec({ id: "../../etc" }) } }),
    JSON.stringify({ version: 1, snapshots: { a: rec({}), b: rec({}) } }),
    JSON.stringify({
      version: 1,
      snapshots: { a: rec({ kind: "active" }), b: rec({ id: "ctd-1123456789abcdef0123456789abcdef", parent: "a" }) },
    }),
    JSON.stringify({
      version: 1,
      snapshots: { a: rec({ parent: "b" }), b: rec({ id: "ctd-1123456789abcdef0123456789abcdef", parent: "a" }) },
    }),
    JSON.stringify({ version: 1, snapshots: { a: rec({ labels: { x: 1 } }) } }),
  ];
  for (const text of bad) {
    await writeFile(join(state, "snapshots.json"), text);
    await t.throwsAsync(startSnapshotter({ driver, stateDir: state, socket: join(dir, "s.sock"), log: () => {} }), {
      code: "ERR_SNAPSHOT_METADATA",
    });
    t.is(await readFile(join(state, "snapshots.json"), "utf8"), text);
  }
});

test("one server per store, and never over a live socket or a file that is not a socket", async (t) => {
  const { dir, driver, server } = await setup(t, "vfs");
  const state = join(dir, "store", "containerd");
  await t.throwsAsync(startSnapshotter({ driver, stateDir: state, socket: join(dir, "other.sock"), log: () => {} }), {
    code: "ERR_SNAPSHOTTER_BUSY",
  });
  await t.throwsAsync(
    startSnapshotter({ driver, stateDir: join(dir, "state2"), socket: server.socket, log: () => {} }),
    {
      code: "ERR_SOCKET_IN_USE",
    },
  );
  await writeFile(join(dir, "plain"), "keep");
  await t.throwsAsync(
    startSnapshotter({ driver, stateDir: join(dir, "state3"), socket: join(dir, "plain"), log: () => {} }),
    {
      code: "ERR_INVALID_ARGUMENT",
    },
  );
  t.is(await readFile(join(dir, "plain"), "utf8"), "keep");
});

test("strata serve refuses a root that holds strata's own layer store, and a call without a front door", async (t) => {
  const dir = await tempDir(t, "strata-ctd-cli-");
  await writeFile(join(dir, "l.tar"), await makeTar([{ name: "a", content: "a" }]));
  t.is((await strata(["--root", dir, "--driver", "vfs", "layer", "apply", join(dir, "l.tar")])).code, 0);
  const shared = await strata([
    "--root",
    dir,
    "--driver",
    "vfs",
    "serve",
    "--containerd-snapshotter",
    join(dir, "s.sock"),
  ]);
  t.is(shared.code, 1);
  t.regex(shared.stderr, /^strata: Cannot open store for serve: it holds strata's own layers.* \[ERR_STORE_OWNED\]\n$/);
  const none = await strata(["--root", join(dir, "other"), "--driver", "vfs", "serve"]);
  t.is(none.code, 125, "a missing flag is a usage error, as docker's");
  t.regex(none.stderr, /^strata: Cannot serve: no front door .*\[ERR_USAGE\]\nSee 'strata serve --help'\.\n$/);
});
