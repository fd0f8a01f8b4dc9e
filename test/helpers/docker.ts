/**
 * The peer dockerd (overlay2, private socket) from ../shared/peers, for
 * tests that compare with Docker. `dockerPeer()` returns a client, or the
 * reason it cannot (the test then skips and says why). A dockerd this
 * process had to start is stopped by pid when the process exits. Containers
 * and images that tests name `strata-<kind>-<pid>-<n>` are removed by their
 * teardowns; the ones left by a test process that was killed (teardowns do
 * not run then) are removed here, once their pid is gone.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
export const PEERS =
  process.env.STRATA_PEERS ?? join(dirname(fileURLToPath(import.meta.url)), "../../../../shared/peers");
const SOCK = "unix:///run/peer-docker.sock";
const DOCKER = "/usr/bin/docker";
const PIDFILE = "/tmp/peer-lab/run/dockerd-overlay2.pid";
/** The Debian minbase image make-base-image.sh builds. */
export const BASE_IMAGE = "peer/base:1";

export type Docker = (...args: string[]) => Promise<string>;

const docker: Docker = (...args) =>
  run(DOCKER, ["-H", SOCK, ...args], { maxBuffer: 256 << 20 }).then((r) => r.stdout.trim());

let started: number | undefined;
process.on("exit", () => {
  if (started !== undefined) {
    try {
      process.kill(started, "SIGTERM");
    } catch {
      // already gone
    }
  }
});

const TEST_NAME = /^strata-[a-z]+-(\d+)-\d+$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes test containers and images whose process is dead. */
async function sweepDeadTestObjects(): Promise<void> {
  const dead = (name: string) => {
    const m = TEST_NAME.exec(name);
    return m !== null && !alive(Number(m[1]));
  };
  const containers = (await docker("ps", "-a", "--format", "{{.Names}}")).split("\n").filter(dead);
  if (containers.length) await docker("rm", "-f", ...containers);
  const images = (await docker("images", "--format", "{{.Repository}}:{{.Tag}}"))
    .split("\n")
    .filter((ref) => dead(ref.split("/").pop()!.split(":")[0]!));
  if (images.length) await docker("rmi", "-f", ...images);
}

let swept: Promise<void> | undefined;

/** A docker client for the peer dockerd with `image` present, or the reason there is none. */
export async function dockerPeer(image = BASE_IMAGE): Promise<{ docker: Docker } | { reason: string }> {
  if (!existsSync(DOCKER)) return { reason: `${DOCKER} is not installed (${PEERS}/install.sh)` };
  try {
    await docker("version");
  } catch {
    try {
      const out = await run("bash", [join(PEERS, "start-dockerd.sh"), "overlay2"]);
      // Only a dockerd this process started is ours to stop; "already running" belongs to someone else.
      if (!/already running/.test(out.stdout)) started = Number((await readFile(PIDFILE, "utf8")).trim());
    } catch (err) {
      return { reason: `dockerd cannot start: ${(err as Error).message.split("\n").slice(0, 3).join(" ")}` };
    }
  }
  try {
    await docker("image", "inspect", image);
  } catch {
    return { reason: `image ${image} is missing (${PEERS}/make-base-image.sh)` };
  }
  swept ??= sweepDeadTestObjects();
  await swept;
  return { docker };
}

/** Extracts `docker save IMAGE` into `dir`; returns the layer tar paths, bottom first. */
export async function savedLayers(dir: string, image = BASE_IMAGE): Promise<string[]> {
  await run("sh", ["-c", `${DOCKER} -H ${SOCK} save ${image} | tar -x -C ${dir}`], { maxBuffer: 64 << 20 });
  const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as Array<{ Layers: string[] }>;
  return m[0]!.Layers.map((l) => join(dir, l));
}
