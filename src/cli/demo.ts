/**
 * `strata demo`: the main job end to end on a built-in sample. Makes a small
 * layer tar, applies it into a store with the default driver, creates a
 * container layer on it, changes files, prints the diff and commits the
 * change to a layer tar.
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { TarHeader } from "../archive/tar-header.js";
import { tarStream } from "../archive/tar-writer.js";
import { builtinDrivers } from "../drivers/index.js";
import type { MountAccess } from "../graphdriver/driver.js";

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
  root?: string;
  driver?: string;
  out?: string;
}

/** Runs the demo and prints what happens; returns the path of the committed layer tar. */
export async function runDemo(opts: DemoOptions, log: (s: string) => void): Promise<string> {
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), "strata-demo-")));
  const driver = await builtinDrivers().select(opts.driver, { root, options: {} });
  const mounts: MountAccess = { acquire: (id) => driver.get(id), release: (id) => driver.put(id) };
  try {
    log(`store: ${root} (driver ${driver.name})`);
    await driver.create("base", "");
    const size = await driver.applyDiff("base", "", sampleLayer(), mounts);
    log(`applied the sample layer: ${size} bytes`);
    await driver.createReadWrite("demo-container", "base");
    const rw = await driver.get("demo-container");
    await writeFile(join(rw, "etc/motd"), "Changed by the demo.\n");
    await rm(join(rw, "var/log/old.log"));
    await mkdir(join(rw, "srv/app"), { recursive: true });
    await writeFile(join(rw, "srv/app/config.json"), '{"demo":true}\n');
    await symlink("/srv/app/config.json", join(rw, "etc/app.json"));
    await chmod(join(rw, "bin/hello"), 0o700);
    await driver.put("demo-container");
    log("diff of the container:");
    for (const c of await driver.changes("demo-container", "base", mounts)) log(`  ${c.kind} ${c.path}`);
    const out = opts.out ?? join(root, "demo-commit.tar");
    await pipeline(await driver.diff("demo-container", "base", mounts), createWriteStream(out));
    log(`committed the change to ${out}`);
    return out;
  } finally {
    await driver.cleanup();
  }
}
