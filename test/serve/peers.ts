/**
 * The peers the serve tests compare with: a private registry per test
 * process (the shared one on 127.0.0.1:5000 is stopped by whichever process
 * started it, under the feet of the others), holding the peer lab's images,
 * and the peer dockerd on overlay2.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { PEERS } from "../helpers/docker.js";

const run = promisify(execFile);
export const ARTIFACTS = process.env.PEER_ARTIFACTS ?? "/tmp/peer-artifacts";
const REGISTRY_BIN = "/usr/bin/docker-registry";

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/**
 * Starts this process's registry on a free loopback port (dockerd talks
 * plain HTTP to 127.0.0.0/8), its storage in a temporary directory; both go
 * with {@link stopRegistry}.
 */
async function startRegistry(): Promise<string> {
  const dir = mkdtempSync("/tmp/strata-serve-registry-");
  const addr = `127.0.0.1:${await freePort()}`;
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: ${addr}\n`,
  );
  const child = spawn(REGISTRY_BIN, ["serve", config], { stdio: "ignore" });
  process.on("exit", () => child.kill("SIGKILL")); // a process that ends without stopRegistry
  registry = { child, dir };
  for (let i = 0; i < 400; i++) {
    const up = await fetch(`http://${addr}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return addr;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Cannot start the test registry: no answer on ${addr} "${REGISTRY_BIN}"`);
}

let registry: { child: ChildProcess; dir: string } | undefined;

/** Stops this process's registry and removes its storage (a test file's `after.always`). */
export async function stopRegistry(): Promise<void> {
  if (!registry) return;
  const { child, dir } = registry;
  registry = undefined;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((res) => child.once("exit", res));
    child.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}

let pushed: Promise<Record<string, string>> | undefined;

/**
 * The peer lab's images in this process's registry, pushed once:
 * `{ tiny, base }` → `127.0.0.1:<port>/strata-serve/<name>:1`.
 */
export function registryImages(): Promise<Record<string, string>> {
  pushed ??= (async () => {
    const registry = await startRegistry();
    const out: Record<string, string> = {};
    for (const name of ["tiny", "base"]) {
      const ref = `${registry}/strata-serve/${name}:1`;
      await run("skopeo", [
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        `docker-archive:${join(ARTIFACTS, `${name}-docker-archive.tar`)}`,
        `docker://${ref}`,
      ]);
      out[name] = ref;
    }
    return out;
  })();
  return pushed;
}

/** Why the docker tests cannot run here, or null. */
export function missingPeers(): string | null {
  for (const f of ["/usr/sbin/dockerd", "/usr/bin/docker", "/usr/bin/skopeo", REGISTRY_BIN])
    if (!existsSync(f)) return `${f} is not installed (${PEERS}/install.sh)`;
  for (const f of ["tiny-docker-archive.tar", "base-docker-archive.tar"])
    if (!existsSync(join(ARTIFACTS, f))) return `${ARTIFACTS}/${f} is missing (${PEERS}/make-base-image.sh)`;
  return null;
}
