/**
 * Running the tools a benchmark compares with: commands with their output
 * captured, daemons started detached and stopped by their own pid, helpers
 * to find executables, and unmounting what a run left mounted.
 *
 * @module
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { access, constants, open, readFile } from "node:fs/promises";
import { C, umount2 } from "../native.js";
import { mountsUnder } from "../util/mountinfo.js";

/** Runs a command; rejects with its first stderr line when it fails. */
export function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 256 << 20, cwd: opts.cwd }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim().split("\n").at(-1) || err.message;
        reject(new Error(`${cmd} ${args.slice(0, 3).join(" ")}: ${why}`));
      } else resolve(stdout);
    });
  });
}

/** True when `path` exists and is executable. */
export async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first of `paths` that is executable. */
export async function firstExecutable(...paths: string[]): Promise<string | undefined> {
  for (const p of paths) if (await executable(p)) return p;
  return undefined;
}

/** A daemon this harness started; stopped by its pid only. */
export class Daemon {
  readonly child: ChildProcess;
  readonly name: string;
  #exited: Promise<void>;

  private constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    this.#exited = new Promise((res) => child.once("exit", () => res()));
  }

  /** Starts `cmd` in its own session with output appended to `logFile`. */
  static async start(name: string, cmd: string, args: string[], logFile: string): Promise<Daemon> {
    const log = await open(logFile, "a");
    try {
      const child = spawn(cmd, args, { detached: true, stdio: ["ignore", log.fd, log.fd] });
      await new Promise<void>((res, rej) => {
        child.once("spawn", () => res());
        child.once("error", rej);
      });
      return new Daemon(name, child);
    } finally {
      await log.close();
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until `ready()` answers true; throws if the daemon dies or `timeoutMs` passes. */
  async waitReady(ready: () => Promise<boolean>, timeoutMs: number, logFile: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (!this.alive) throw new Error(`${this.name} exited: ${await tail(logFile)}`);
      if (await ready().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name} not ready after ${timeoutMs / 1000}s: ${await tail(logFile)}`);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  async stop(graceMs = 30_000): Promise<void> {
    if (!this.alive) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }
}

async function tail(file: string): Promise<string> {
  try {
    return (await readFile(file, "utf8")).trim().split("\n").slice(-2).join(" | ");
  } catch {
    return "(no log)";
  }
}

/**
 * Unmounts everything mounted at or below `dir`, deepest first (lazily when
 * busy), stacked mounts too.
 */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 16; round++) {
    const left = (await mountsUnder(dir)).sort((a, b) => b.length - a.length);
    if (left.length === 0) return;
    for (const m of left) {
      try {
        await umount2(m, 0);
      } catch {
        await umount2(m, C.MNT_DETACH).catch(() => {});
      }
    }
  }
}
