/**
 * Real peers for the image tests: installs docker-registry, skopeo and umoci
 * with apt when missing (apt-get update only then), starts a private
 * Distribution registry on 127.0.0.1 on a free port with its own data
 * directory, and stops it by pid when the test ends.
 */
import { execFile, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ExecutionContext } from "ava";
import { tempDir } from "../helpers/tmp.js";

export const run = promisify(execFile);

let installing: Promise<void> | undefined;

/** Installs the Debian packages that are missing (idempotent; one apt run per process). */
export function ensurePackages(pkgs = ["docker-registry", "skopeo", "umoci"]): Promise<void> {
  installing ??= (async () => {
    const missing: string[] = [];
    for (const p of pkgs) {
      const r = await run("dpkg-query", ["-W", "-f=${Status}", p]).catch(() => ({ stdout: "" }));
      if (!r.stdout.includes("install ok installed")) missing.push(p);
    }
    if (missing.length === 0) return;
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const apt = ["-o", "DPkg::Lock::Timeout=600", "-q"];
    await run("apt-get", [...apt, "update"], { env, maxBuffer: 1 << 26 });
    await run("apt-get", [...apt, "install", "-y", "--no-install-recommends", ...missing], { env, maxBuffer: 1 << 26 });
  })();
  return installing;
}

/** A free TCP port on 127.0.0.1 (free when asked; the registry binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A running private registry. */
export interface TestRegistry {
  /** "127.0.0.1:PORT" */
  addr: string;
  pid: number;
  /** Stops it (SIGKILL when `hard`), waiting for exit. Safe to call twice. */
  stop(hard?: boolean): Promise<void>;
}

/**
 * Starts docker-registry on a free port; stopped by pid at the end of the test.
 * With `auth`, it asks for that user and password (htpasswd, basic auth).
 */
export async function startRegistry(
  t: ExecutionContext,
  opts: { auth?: { user: string; password: string } } = {},
): Promise<TestRegistry> {
  await ensurePackages();
  const dir = await tempDir(t, "strata-registry-");
  const authConfig: string[] = [];
  if (opts.auth) {
    // bcrypt, which the registry's htpasswd wants, from Python's crypt (no npm dependency for a test).
    const { stdout } = await run("python3", [
      "-W",
      "ignore",
      "-c",
      "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
      opts.auth.password,
    ]);
    await writeFile(join(dir, "htpasswd"), `${opts.auth.user}:${stdout.trim()}\n`);
    authConfig.push("auth:", "  htpasswd:", "    realm: strata-test", `    path: ${join(dir, "htpasswd")}`);
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const addr = `127.0.0.1:${port}`;
    const cfg = join(dir, "config.yml");
    await writeFile(
      cfg,
      [
        "version: 0.1",
        "log:",
        "  level: error",
        "storage:",
        "  filesystem:",
        `    rootdirectory: ${join(dir, "data")}`,
        "  delete:",
        "    enabled: true",
        "http:",
        `  addr: ${addr}`,
        ...authConfig,
        "",
      ].join("\n"),
    );
    const child = spawn("/usr/bin/docker-registry", ["serve", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    let alive = true;
    child.once("exit", () => (alive = false));
    const stop = async (hard = false) => {
      if (alive) child.kill(hard ? "SIGKILL" : "SIGTERM");
      await exited;
    };
    // If the worker dies before teardown (an uncaught exception), the registry must not outlive it.
    const onExit = () => child.kill("SIGKILL");
    process.once("exit", onExit);
    t.teardown(async () => {
      await stop();
      process.off("exit", onExit);
    });
    for (let i = 0; i < 200 && alive; i++) {
      try {
        const res = await fetch(`http://${addr}/v2/`);
        if (res.status === 200 || (opts.auth && res.status === 401)) return { addr, pid: child.pid as number, stop };
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await stop(true);
    if (attempt >= 2) throw new Error(`docker-registry did not start on ${addr}: ${stderr.slice(-500)}`);
  }
}

/** skopeo copy between transports, plain HTTP and no TLS checks for the local registry. */
export async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await run("skopeo", ["--insecure-policy", ...args], { maxBuffer: 1 << 26 });
  return stdout;
}

/** The peer dockerd (overlay2) from /work/shared/peers, or a reason it is not available. */
export async function peerDocker(
  t: ExecutionContext,
): Promise<{ docker: (...a: string[]) => Promise<string> } | string> {
  const script = "/work/shared/peers/start-dockerd.sh";
  const { existsSync } = await import("node:fs");
  if (!existsSync("/usr/sbin/dockerd") || !existsSync("/usr/bin/docker")) {
    return "no dockerd on this machine (/work/shared/peers/install.sh installs docker.io)";
  }
  if (!existsSync(script)) return `no ${script}`;
  const { stdout } = await run("bash", [script], { maxBuffer: 1 << 24 });
  if (/ready in/.test(stdout)) {
    // This test started it: stop it by its pid when the test ends.
    const { readFile } = await import("node:fs/promises");
    const pid = Number((await readFile("/tmp/peer-lab/run/dockerd-overlay2.pid", "utf8")).trim());
    t.teardown(() => {
      if (pid > 0) process.kill(pid, "SIGTERM");
    });
  }
  return {
    docker: async (...a: string[]) =>
      (await run("/usr/bin/docker", ["-H", "unix:///run/peer-docker.sock", ...a], { maxBuffer: 1 << 26 })).stdout,
  };
}
