/**
 * The shared peers the serve tests compare with: the registry on
 * 127.0.0.1:5000 (started if it is not running, and then stopped by pid when
 * this process exits) holding the peer lab's images under a repository
 * named for this process, and the peer dockerd on overlay2.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { PEERS } from "../helpers/docker.js";

const run = promisify(execFile);
export const ARTIFACTS = process.env.PEER_ARTIFACTS ?? "/tmp/peer-artifacts";
export const REGISTRY = "127.0.0.1:5000";
const REG_PIDFILE = "/tmp/peer-lab/run/registry.pid";

let registryStarted: number | undefined;
process.on("exit", () => {
  if (registryStarted === undefined) return;
  try {
    process.kill(registryStarted, "SIGTERM");
  } catch {
    // gone
  }
});

async function registryUp(): Promise<boolean> {
  return run("curl", ["-sf", `http://${REGISTRY}/v2/`]).then(
    () => true,
    () => false,
  );
}

let pushed: Promise<Record<string, string>> | undefined;

/**
 * The peer lab's images in the registry, pushed once per test process:
 * `{ tiny, base }` → `127.0.0.1:5000/strata-serve-<pid>/<name>:1`.
 */
export function registryImages(): Promise<Record<string, string>> {
  pushed ??= (async () => {
    if (!(await registryUp())) {
      const out = await run("bash", [join(PEERS, "start-registry.sh")]);
      if (!/already running/.test(out.stdout)) registryStarted = Number((await readFile(REG_PIDFILE, "utf8")).trim());
    }
    const out: Record<string, string> = {};
    for (const name of ["tiny", "base"]) {
      const ref = `${REGISTRY}/strata-serve-${process.pid}/${name}:1`;
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
  for (const f of ["/usr/sbin/dockerd", "/usr/bin/docker", "/usr/bin/skopeo"])
    if (!existsSync(f)) return `${f} is not installed (${PEERS}/install.sh)`;
  for (const f of ["tiny-docker-archive.tar", "base-docker-archive.tar"])
    if (!existsSync(join(ARTIFACTS, f))) return `${ARTIFACTS}/${f} is missing (${PEERS}/make-base-image.sh)`;
  return null;
}
