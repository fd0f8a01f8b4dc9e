/**
 * Real daemons for the `strata serve` tests: `strata serve --docker-plugin`
 * on a socket with a name unique to the test (`/run/docker/plugins/<name>.sock`,
 * which is how dockerd finds the plugin `--storage-driver <name>`), and a
 * private dockerd with its own data-root, exec-root and socket (the peer
 * lab's flags). Every process is stopped by pid when the test ends, on
 * failure too, and its leftovers (mounts, loop devices, the thin pool) are
 * cleaned by opening the driver and calling its full cleanup.
 */
import { execFile, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ExecutionContext } from "ava";
import { builtinDrivers } from "../../src/drivers/index.js";
import { CLI } from "../helpers/cli.js";
import { driverTestArgs, driverTestOptions } from "../helpers/drivers.js";
import { unmountUnder } from "../helpers/tmp.js";

const run = promisify(execFile);
export const DOCKER = "/usr/bin/docker";
export const DOCKERD = "/usr/sbin/dockerd";

let seq = 0;
/** A name unique to this test process: `strata-serve-<pid>-<n>` (the peer helpers sweep it once the pid is gone). */
export function uniqueName(kind = "serve"): string {
  return `strata-${kind}-${process.pid}-${++seq}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends `signal` and waits (up to `ms`) for the process to be gone; SIGKILL after that. */
export async function stopPid(pid: number, signal: NodeJS.Signals = "SIGTERM", ms = 30_000): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, signal);
  const until = Date.now() + ms;
  while (alive(pid) && Date.now() < until) await sleep(50);
  if (alive(pid)) {
    process.kill(pid, "SIGKILL");
    while (alive(pid)) await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** POSTs a JSON body to a plugin socket; resolves to status and parsed body. */
export function pluginCall(
  socket: string,
  method: string,
  body: unknown = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = typeof body === "string" ? body : JSON.stringify(body);
    const req = request({ socketPath: socket, path: `/${method}`, method: "POST" }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => {
        const text = Buffer.concat(parts).toString();
        let parsed: Record<string, unknown> = {};
        try {
          parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        } catch {
          parsed = { raw: text };
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on("error", reject);
    req.end(data);
  });
}

/** POSTs a body streamed from `body` (sent chunked); resolves to status and parsed answer. */
export function pluginCallStream(
  socket: string,
  method: string,
  body: NodeJS.ReadableStream,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: `/${method}`, method: "POST" }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body: JSON.parse(Buffer.concat(parts).toString() || "{}") as Record<string, unknown>,
        }),
      );
    });
    req.on("error", reject);
    body.pipe(req);
  });
}

/** A running `strata serve --docker-plugin`. */
export interface Serve {
  readonly name: string;
  readonly socket: string;
  readonly root: string;
  readonly driver: string;
  readonly logFile: string;
  pid: number;
  /** Starts it (again), waiting until the socket answers. */
  start(): Promise<void>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  log(): Promise<string>;
}

/**
 * Starts `strata serve` for `driver` on a fresh root inside `dir`, with the
 * test options of the driver (small devmapper pool). Stopped at teardown,
 * then the driver is opened here and cleaned up (unmounts, pool, loops).
 */
export async function startServe(
  t: ExecutionContext,
  dir: string,
  driver: string,
  extra: string[] = [],
): Promise<Serve> {
  const name = uniqueName("serve");
  const root = join(dir, "root");
  const logFile = join(dir, "serve.log");
  const socket = `/run/docker/plugins/${name}.sock`;
  const args = [CLI, "--root", root, "--driver", driver, ...driverTestArgs(driver), "serve", "--docker-plugin", socket];
  const s: Serve = {
    name,
    socket,
    root,
    driver,
    logFile,
    pid: 0,
    async start() {
      const fd = openSync(logFile, "a");
      try {
        const child = spawn(process.execPath, [...args, "--log-level", "debug", ...extra], {
          stdio: ["ignore", fd, fd],
          detached: true,
        });
        child.unref();
        s.pid = child.pid!;
      } finally {
        closeSync(fd);
      }
      const until = Date.now() + 60_000;
      for (;;) {
        try {
          const r = await pluginCall(socket, "Plugin.Activate");
          if (r.status === 200) return;
        } catch {
          // not listening yet
        }
        if (!alive(s.pid)) throw new Error(`strata serve exited; log:\n${await s.log()}`);
        if (Date.now() > until) throw new Error(`strata serve not ready after 60 s; log:\n${await s.log()}`);
        await sleep(50);
      }
    },
    stop: (signal = "SIGTERM") => stopPid(s.pid, signal),
    log: () => readFile(logFile, "utf8").catch(() => ""),
  };
  t.teardown(async () => {
    await stopPid(s.pid);
    await rm(socket, { force: true });
    // What a failed test left: the driver's full cleanup (mounts, thin devices, the pool daemon).
    const d = await builtinDrivers()
      .get(driver)
      .factory({ root, options: driverTestOptions(driver) });
    await d.cleanup();
    await unmountUnder(root);
  });
  await s.start();
  return s;
}

/** A private dockerd using a plugin as its storage driver. */
export interface Dockerd {
  readonly dir: string;
  pid: number;
  docker(...args: string[]): Promise<string>;
  start(): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /**
   * A crash: SIGKILL of dockerd and of the containerd it started (which
   * would otherwise linger until its next log line, and a restarted dockerd
   * would wait for it).
   */
  crash(): Promise<void>;
  /** dockerd's own containerd (started by dockerd, survives a SIGKILL of it). */
  containerdPid(): Promise<number | null>;
}

/** Starts dockerd with `--storage-driver <plugin>` in `dir`; stopped (with its containerd) at teardown. */
export async function startDockerd(t: ExecutionContext, dir: string, plugin: string): Promise<Dockerd> {
  const sock = join(dir, "docker.sock");
  const exec = join(dir, "exec");
  const args = [
    "--experimental",
    "--storage-driver",
    plugin,
    "--data-root",
    join(dir, "data"),
    "--exec-root",
    exec,
    "--host",
    `unix://${sock}`,
    "--pidfile",
    join(dir, "dockerd.pid"),
    "--iptables=false",
    "--ip-masq=false",
    "--bridge=none",
    "--ip-forward=false",
  ];
  const docker = async (...a: string[]) => {
    try {
      return (await run(DOCKER, ["-H", `unix://${sock}`, ...a], { maxBuffer: 256 << 20 })).stdout.trim();
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`docker ${a.join(" ")}: ${e.stderr || e.message}`);
    }
  };
  const d: Dockerd = {
    dir,
    pid: 0,
    docker,
    async start() {
      const fd = openSync(join(dir, "dockerd.log"), "a");
      try {
        const child = spawn(DOCKERD, args, { stdio: ["ignore", fd, fd], detached: true });
        child.unref();
        d.pid = child.pid!;
      } finally {
        closeSync(fd);
      }
      const until = Date.now() + 60_000;
      for (;;) {
        try {
          await docker("version", "--format", "{{.Server.Version}}");
          return;
        } catch {
          // not up yet
        }
        if (!alive(d.pid)) throw new Error(`dockerd exited; log:\n${await readFile(join(dir, "dockerd.log"), "utf8")}`);
        if (Date.now() > until) throw new Error("dockerd not ready after 60 s");
        await sleep(100);
      }
    },
    stop: (signal = "SIGTERM") => stopPid(d.pid, signal, 60_000),
    async crash() {
      const ctd = await d.containerdPid();
      await stopPid(d.pid, "SIGKILL");
      if (ctd) await stopPid(ctd, "SIGKILL");
    },
    async containerdPid() {
      const text = await readFile(join(exec, "containerd", "containerd.pid"), "utf8").catch(() => "");
      const pid = Number(text.trim());
      return pid > 0 && alive(pid) ? pid : null;
    },
  };
  t.teardown(async () => {
    if (alive(d.pid)) {
      // Containers first: a graceful dockerd stop would leave none, a failing test might.
      await docker("rm", "-f", ...(await docker("ps", "-aq")).split("\n").filter(Boolean)).catch(() => "");
    }
    await stopPid(d.pid, "SIGTERM", 60_000);
    const ctd = await d.containerdPid();
    if (ctd) await stopPid(ctd);
    await unmountUnder(dir);
  });
  await d.start();
  return d;
}

/** `GraphDriver.ApplyDiff?id=&parent=` with `body` (bytes or a stream) as the raw tar. */
export function applyDiffCall(
  socket: string,
  id: string,
  parent: string,
  body: Buffer | NodeJS.ReadableStream,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, path: `/GraphDriver.ApplyDiff?id=${id}&parent=${parent}`, method: "POST" },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(parts).toString() || "{}") as Record<string, unknown>,
          }),
        );
      },
    );
    req.on("error", reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** `GraphDriver.Diff`: the tar bytes, or the error status. */
export function diffCall(socket: string, id: string, parent: string): Promise<{ status: number; tar: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: "/GraphDriver.Diff", method: "POST" }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, tar: Buffer.concat(parts) }));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ ID: id, Parent: parent }));
  });
}
