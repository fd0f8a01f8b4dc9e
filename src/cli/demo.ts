/**
 * `strata demo`: the main job end to end on a built-in sample. Makes a small
 * layer tar, registers it in a store with the default driver, creates a
 * container layer on it (with the init layer), changes files through a
 * mount, prints the diff, commits the change as a new layer and writes the
 * layer tar.
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { TarHeader } from "../archive/tar-header.js";
import { tarStream } from "../archive/tar-writer.js";
import { builtinDrivers } from "../drivers/index.js";
import { LayerStore } from "../layer/index.js";

function file(name: string, content: string, mode = 0o644): { header: TarHeader; body: Buffer } {
  const body = Buffer.from(content);
  return {
    header: {
      name,
      type: "file",
      mode,
      uid: 0,
      gid: 0,
      uname: "root",
      gname: "root",
      size: body.length,
      mtime: { sec: 1_700_000_000, nsec: 0 },
      linkname: "",
      devmajor: 0,
      devminor: 0,
      xattrs: new Map(),
    },
    body,
  };
}

function dir(name: string): { header: TarHeader } {
  return { header: { ...file(name, "").header, type: "dir", mode: 0o755 } };
}

/** The built-in sample layer: a tiny root filesystem. */
export function sampleLayer(): Readable {
  return tarStream(
    (async function* () {
      yield dir("etc/");
      yield file("etc/hostname", "strata-demo\n");
      yield file("etc/motd", "Welcome to strata.\n");
      yield dir("bin/");
      yield file("bin/hello", "#!/bin/sh\necho hello\n", 0o755);
      yield dir("var/");
      yield dir("var/log/");
      yield file("var/log/old.log", "old entries\n");
    })(),
  );
}

export interface DemoOptions {
  /** Store root; default a new temporary directory, removed at the end. */
  root?: string;
  driver?: string;
  /** Where the committed layer tar goes; default inside the (temporary) root's parent. */
  output?: string;
}

/** Runs the demo, printing each step; returns the path of the committed layer tar. */
export async function runDemo(opts: DemoOptions, log: (s: string) => void): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), "strata-demo-"));
  const root = opts.root ?? join(work, "root");
  const driver = await builtinDrivers().select(opts.driver, { root, options: {} });
  const store = await LayerStore.open(root, driver);
  const name = `demo-${process.pid}`;
  try {
    log(`store ${root}, driver ${driver.name}`);
    for (const [k, v] of await driver.status()) log(`  ${k}: ${v}`);
    const base = await store.register(sampleLayer(), "", { ref: "image:strata-demo" });
    log(`registered the sample layer ${base.chainID} (${base.size} bytes)`);
    await store.createRWLayer(name, base.chainID);
    const rw = await store.mount(name);
    log(`created container ${name}, mounted at ${rw}`);
    await writeFile(join(rw, "etc/motd"), "Changed by the demo.\n");
    await rm(join(rw, "var/log/old.log"));
    await mkdir(join(rw, "srv/app"), { recursive: true });
    await writeFile(join(rw, "srv/app/config.json"), '{"demo":true}\n');
    await symlink("/srv/app/config.json", join(rw, "etc/app.json"));
    await chmod(join(rw, "bin/hello"), 0o700);
    log(`diff of ${name} (init files are not shown):`);
    for (const c of await store.changes(name)) log(`  ${c.kind} ${c.path}`);
    const out = opts.output ?? join(work, "demo-commit.tar");
    await pipeline(await store.diffTar(name), createWriteStream(out));
    log(`wrote the change as a layer tar: ${out}`);
    const committed = await store.commit(name, { ref: "image:strata-demo-committed" });
    log(`committed it as layer ${committed.chainID} on ${committed.parent}`);
    await store.unmount(name);
    await store.releaseRWLayer(name);
    return out;
  } finally {
    await store.close();
    await driver.close(); // a --root given by the user may hold other mounts
    if (!opts.root) await rm(root, { recursive: true, force: true });
  }
}
