/**
 * The plugin protocol of `strata serve --docker-plugin`, spoken by this test
 * as dockerd speaks it (a real daemon, real mounts): hostile requests,
 * mount counts across a SIGKILL, layers left unfilled, and the driver's view
 * of an image layer being exactly that layer.
 */
import { randomBytes } from "node:crypto";
import { PassThrough, Readable } from "node:stream";
import test from "ava";
import { readTar } from "../helpers/tar-reader.js";
import { builtinDrivers } from "../../src/drivers/index.js";
import { mountsUnder } from "../../src/util/mountinfo.js";
import { supportedDrivers } from "../helpers/drivers.js";
import { chunks, makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { applyDiffCall, diffCall, pluginCall, pluginCallStream, startServe } from "./engines.js";

const drivers = await supportedDrivers();
const newID = () => randomBytes(32).toString("hex");
const layerTar = () =>
  makeTar([
    { name: "etc/" },
    { name: "etc/hosts", content: "image\n" },
    { name: "bin/" },
    { name: "bin/sh", content: "sh" },
  ]);

/** An image layer filled with {@link layerTar}, as dockerd makes one. */
async function imageLayer(socket: string, parent = ""): Promise<string> {
  const id = newID();
  const c = await pluginCall(socket, "GraphDriver.Create", { ID: id, Parent: parent });
  if (c.status !== 200) throw new Error(`Create: ${JSON.stringify(c)}`);
  const a = await applyDiffCall(socket, id, parent, await layerTar());
  if (a.status !== 200) throw new Error(`ApplyDiff: ${JSON.stringify(a)}`);
  return id;
}

test("hostile requests get one error each, with a fitting status, and the daemon serves on", async (t) => {
  const dir = await tempDir(t, "strata-serve-proto-");
  const s = await startServe(t, dir, "overlay");
  const call = (m: string, b: unknown) => pluginCall(s.socket, m, b);
  const expect = async (r: Promise<{ status: number; body: Record<string, unknown> }>, status: number, err: RegExp) => {
    const got = await r;
    t.is(got.status, status, JSON.stringify(got.body));
    t.regex(String(got.body.Err), err);
  };
  await expect(call("GraphDriver.Exists", "x".repeat(70_000)), 413, /body over 65536 bytes/);
  await expect(call("GraphDriver.Exists", "{not json"), 400, /invalid JSON/);
  await expect(call("GraphDriver.Exists", "[1,2]"), 400, /not a JSON object/);
  await expect(call("GraphDriver.Exists", { ID: 5 }), 400, /field ID must be a string/);
  await expect(call("GraphDriver.Create", { ID: newID(), StorageOpt: { size: 1 } }), 400, /StorageOpt.size/);
  for (const id of ["l", "../../etc", "", `${newID()}/x`, newID().toUpperCase()])
    await expect(call("GraphDriver.Remove", { ID: id }), 400, /not a dockerd layer id/);
  await expect(call("GraphDriver.Create", { ID: newID(), Parent: "l" }), 400, /not a dockerd layer id/);
  await expect(call("GraphDriver.Nope", {}), 404, /unknown method/);
  await expect(call("GraphDriver.Get", { ID: newID() }), 404, /not found/);
  await expect(call("GraphDriver.Init", { Home: "/x", Opts: ["overlay2.size=1G"] }), 400, /storage options/);
  await expect(call("GraphDriver.Init", { Home: "/x", Opts: [], UIDMaps: [{}] }), 400, /userns-remap/);

  // ApplyDiff: only into a layer Create made and nothing filled yet; a bad tar removes it.
  await expect(applyDiffCall(s.socket, newID(), "", await layerTar()), 404, /not found/);
  const filled = await imageLayer(s.socket);
  await expect(applyDiffCall(s.socket, filled, "", await layerTar()), 409, /filled already/);
  for (const bad of [
    await makeTar([{ name: "../escape", content: "x" }]),
    Buffer.concat([Buffer.alloc(512, 7), Buffer.alloc(1024)]),
  ]) {
    const id = newID();
    t.is((await call("GraphDriver.Create", { ID: id })).status, 200);
    await expect(applyDiffCall(s.socket, id, "", bad), 400, /Cannot|breakout|tar/i);
    t.false((await call("GraphDriver.Exists", { ID: id })).body.Exists === true, "the half-filled layer is gone");
  }
  // Refused early in a long body (no Content-Length): the answer still comes, the rest is not read.
  const chunkedJson = new PassThrough();
  const oversized = pluginCallStream(s.socket, "GraphDriver.Exists", chunkedJson);
  chunkedJson.write(`{"ID":"${"a".repeat(70_000)}`);
  await expect(oversized, 413, /body over 65536 bytes/);
  chunkedJson.destroy();
  const early = newID();
  t.is((await call("GraphDriver.Create", { ID: early })).status, 200);
  const endless = new PassThrough();
  const refused = applyDiffCall(s.socket, early, "", endless);
  endless.write(await makeTar([{ name: "../escape", content: "x" }]).then((b) => b.subarray(0, 1024)));
  endless.write(Buffer.alloc(8 << 20));
  await expect(refused, 400, /escape|breakout|outside/i);
  endless.destroy();
  const res = await call("GraphDriver.Exists", { ID: filled });
  t.deepEqual(res, { status: 200, body: { Exists: true } });
  t.deepEqual(await call("Plugin.Activate", {}), { status: 200, body: { Implements: ["GraphDriver"] } });
  t.deepEqual((await call("GraphDriver.Capabilities", {})).body, { Capabilities: { ReproducesExactDiffs: false } });
});

test("overlay: Get/Put counts survive a SIGKILL of serve; a Put without a Get is harmless", async (t) => {
  const dir = await tempDir(t, "strata-serve-proto-");
  const s = await startServe(t, dir, "overlay");
  const base = await imageLayer(s.socket);
  const rw = newID();
  t.is((await pluginCall(s.socket, "GraphDriver.CreateReadWrite", { ID: rw, Parent: base })).status, 200);
  const get = async () => String((await pluginCall(s.socket, "GraphDriver.Get", { ID: rw })).body.Dir);
  const put = async () => (await pluginCall(s.socket, "GraphDriver.Put", { ID: rw })).status;
  const mounted = async (path: string) => (await mountsUnder(dir)).includes(path);
  const path = await get();
  t.is(await get(), path);
  t.true(await mounted(path));
  t.is(await put(), 200);
  t.true(await mounted(path), "one Get is still held");
  await s.stop("SIGKILL");
  t.true(await mounted(path), "a killed serve unmounts nothing");
  await s.start();
  t.true(await mounted(path), "nor does its restart");
  t.is(await put(), 200);
  t.false(await mounted(path), "the Put after the restart released the Get before it");
  t.is(await put(), 200, "a Put with nothing held (dockerd restarted) succeeds");
  t.is((await pluginCall(s.socket, "GraphDriver.Remove", { ID: rw })).status, 200);
});

test("overlay: a mount left without a hold by a killed serve is unmounted at the next start", async (t) => {
  const dir = await tempDir(t, "strata-serve-proto-");
  const s = await startServe(t, dir, "overlay");
  const base = await imageLayer(s.socket);
  const rw = newID();
  t.is((await pluginCall(s.socket, "GraphDriver.CreateReadWrite", { ID: rw, Parent: base })).status, 200);
  await s.stop();
  // What a serve killed between mounting and recording the hold leaves: a mount nobody holds.
  const driver = await builtinDrivers().get("overlay").factory({ root: s.root, options: {} });
  const path = await driver.get(rw);
  await driver.close();
  t.true((await mountsUnder(dir)).includes(path));
  await s.start();
  t.false((await mountsUnder(dir)).includes(path));
  t.regex(await s.log(), /store open .*unmountedUnheld=1/);
});

test("overlay: Init removes layers a previous dockerd created and never filled", async (t) => {
  const dir = await tempDir(t, "strata-serve-proto-");
  const s = await startServe(t, dir, "overlay");
  const kept = await imageLayer(s.socket);
  const orphan = newID();
  t.is((await pluginCall(s.socket, "GraphDriver.Create", { ID: orphan, Parent: kept })).status, 200);
  await s.stop("SIGKILL");
  await s.start();
  const exists = async (id: string) => (await pluginCall(s.socket, "GraphDriver.Exists", { ID: id })).body.Exists;
  t.true(await exists(orphan), "a restart of serve alone keeps it: dockerd may still fill it");
  t.is((await pluginCall(s.socket, "GraphDriver.Init", { Home: "/var/lib/docker/x", Opts: [] })).status, 200);
  t.not(await exists(orphan), true);
  t.true(await exists(kept));
});

for (const driver of drivers.filter((d) => d !== "vfs"))
  test(`${driver}: an image layer's Diff, Changes and DiffSize show exactly the applied tar (no init files)`, async (t) => {
    const dir = await tempDir(t, "strata-serve-proto-");
    const s = await startServe(t, dir, driver);
    const base = await imageLayer(s.socket);
    const top = newID();
    t.is((await pluginCall(s.socket, "GraphDriver.Create", { ID: top, Parent: base })).status, 200);
    const change = await makeTar([{ name: "etc/" }, { name: "etc/motd", content: "hello" }]);
    t.is((await applyDiffCall(s.socket, top, base, change)).body.Size, 5);
    for (const [id, parent, want] of [
      [base, "", ["bin/", "bin/sh", "etc/", "etc/hosts"]],
      [top, base, ["etc/", "etc/motd"]],
    ] as const) {
      const d = await diffCall(s.socket, id, parent);
      t.is(d.status, 200);
      const names: string[] = [];
      for await (const e of readTar(Readable.from(chunks(d.tar)))) {
        names.push(e.header.name);
        await e.skip();
      }
      t.deepEqual(names.sort(), [...want], `Diff(${parent ? "top" : "base"})`);
    }
    const changes = await pluginCall(s.socket, "GraphDriver.Changes", { ID: top, Parent: base });
    t.deepEqual(changes.body.Changes, [
      { Path: "/etc", Kind: 0 },
      { Path: "/etc/motd", Kind: 1 },
    ]);
    t.deepEqual((await pluginCall(s.socket, "GraphDriver.DiffSize", { ID: top, Parent: base })).body, { Size: 5 });
    t.deepEqual((await pluginCall(s.socket, "GraphDriver.DiffSize", { ID: base })).body, { Size: 8 });
    // dockerd's own init layer goes on top of the image layer, and is what a container is measured against.
    const init = `${newID()}-init`;
    t.is((await pluginCall(s.socket, "GraphDriver.CreateReadWrite", { ID: init, Parent: top })).status, 200);
    t.deepEqual((await pluginCall(s.socket, "GraphDriver.Changes", { ID: init, Parent: top })).body, { Changes: [] });
  });
