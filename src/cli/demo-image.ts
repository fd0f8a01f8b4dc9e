/**
 * A small real image built offline from the host for `strata demo`: the
 * statically linked busybox of Debian's busybox-static (`/bin/busybox`,
 * installed by `scripts/setup.sh`) with a link per applet, or, when it is
 * missing, the host's `/bin/sh` with the shared libraries `ldd` names. The
 * image is written as a docker-archive, the format `docker save` writes,
 * so the demo loads it the way a user would.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { lstat, readFile, realpath } from "node:fs/promises";
import { promisify } from "node:util";
import { pipeline } from "node:stream/promises";
import type { TarHeader } from "../archive/tar-header.js";
import { tarStream, type TarOutputEntry } from "../archive/tar-writer.js";

const run = promisify(execFile);

/** The name the demo image is loaded under. */
export const DEMO_IMAGE = "strata-demo/busybox:latest";

/** When the demo's files claim to be from (a fixed time keeps the layer's diffID stable). */
const MTIME = { sec: 1_700_000_000, nsec: 0 };

function header(name: string, type: TarHeader["type"], mode: number, size = 0, linkname = ""): TarHeader {
  return {
    name,
    type,
    mode,
    uid: 0,
    gid: 0,
    uname: "root",
    gname: "root",
    size,
    mtime: MTIME,
    linkname,
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
  };
}

const dir = (name: string, mode = 0o755): TarOutputEntry => ({ header: header(name, "dir", mode) });
const file = (name: string, body: Buffer, mode = 0o644): TarOutputEntry => ({
  header: header(name, "file", mode, body.length),
  body,
});
const symlink = (name: string, target: string): TarOutputEntry => ({
  header: header(name, "symlink", 0o777, 0, target),
});

/** The applets busybox links to: what it lists itself, else a fixed set. */
async function applets(busybox: string): Promise<string[]> {
  try {
    const { stdout } = await run(busybox, ["--list"]);
    return stdout.split("\n").filter((a) => /^[a-z0-9._[-]+$/.test(a) && a !== "busybox");
  } catch {
    return ["sh", "ls", "cat", "echo", "mkdir", "rm", "cp", "mv", "uname", "env", "id"];
  }
}

/** The files of /bin/sh and its libraries, when there is no busybox. */
async function hostShell(): Promise<TarOutputEntry[]> {
  const sh = await realpath("/bin/sh");
  const { stdout } = await run("ldd", [sh]);
  const libs = [...stdout.matchAll(/(\/\S+)\s+\(0x/g)].map((m) => m[1]!);
  const out: TarOutputEntry[] = [file("bin/sh", await readFile(sh), 0o755)];
  const dirs = new Set<string>();
  for (const lib of libs) {
    const parts = lib.slice(1).split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(`${parts.slice(0, i).join("/")}/`);
    out.push(file(lib.slice(1), await readFile(await realpath(lib)), 0o755));
  }
  return [...[...dirs].sort().map((d) => dir(d)), ...out];
}

/** The root filesystem's entries: busybox with its links, or the host's shell; /etc basics. */
async function rootfs(): Promise<{ entries: TarOutputEntry[]; what: string }> {
  const etc = [
    dir("etc/"),
    file("etc/passwd", Buffer.from("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")),
    file("etc/group", Buffer.from("root:x:0:\nnogroup:x:65534:\n")),
    file("etc/motd", Buffer.from("A strata demo image, made from the host's busybox.\n")),
    file("etc/os-release", Buffer.from('NAME="strata demo"\nID=strata-demo\n')),
    dir("root/", 0o700),
    dir("tmp/", 0o1777),
    dir("var/"),
    dir("var/log/"),
    file("var/log/boot.log", Buffer.from("first boot\n")),
  ];
  const busybox = "/bin/busybox";
  const isBusybox = await lstat(busybox).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!isBusybox) return { entries: [...(await hostShell()), ...etc], what: "the host's /bin/sh and its libraries" };
  const body = await readFile(busybox);
  const links = (await applets(busybox)).map((a) => symlink(`bin/${a}`, "busybox"));
  return { entries: [dir("bin/"), file("bin/busybox", body, 0o755), ...links, ...etc], what: `busybox (${busybox})` };
}

/**
 * Writes the demo image as a docker-archive at `path`.
 * @returns what the root filesystem was made of, for the demo's first line
 */
export async function writeDemoArchive(path: string): Promise<string> {
  const { entries, what } = await rootfs();
  // The layer tar is built in memory (a few MB) so its diffID is known before the archive is written.
  const chunks: Buffer[] = [];
  for await (const c of tarStream(
    (async function* () {
      yield* entries;
    })(),
  ))
    chunks.push(c as Buffer);
  const layer = Buffer.concat(chunks);
  const diffID = `sha256:${createHash("sha256").update(layer).digest("hex")}`;
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  const created = new Date(MTIME.sec * 1000).toISOString();
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: "linux",
      created,
      config: { Cmd: ["/bin/sh"], Env: ["PATH=/bin:/usr/bin"] },
      rootfs: { type: "layers", diff_ids: [diffID] },
      history: [{ created, created_by: `strata demo: ${what}` }],
    }),
  );
  const configName = `${createHash("sha256").update(config).digest("hex")}.json`;
  const layerName = `${diffID.slice(7)}/layer.tar`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [DEMO_IMAGE], Layers: [layerName] }]));
  const archive: TarOutputEntry[] = [
    dir(`${diffID.slice(7)}/`),
    file(layerName, layer),
    file(configName, config),
    file("manifest.json", manifest),
  ];
  await pipeline(
    tarStream(
      (async function* () {
        yield* archive;
      })(),
    ),
    createWriteStream(path),
  );
  return what;
}
