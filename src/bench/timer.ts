/**
 * The timer every benchmark uses: wall time, wall time including a `sync`
 * of the filesystem written to, and the user and system CPU time spent.
 *
 * - {@link timeCommand} runs a whole command as a child process (what a user
 *   types) and counts the CPU of that process and of everything it waited
 *   for (from this process's reaped-children times), plus, when given, the
 *   CPU of daemons that do the work for it (dockerd, containerd).
 * - {@link timeCall} times a function in this process; its CPU is this
 *   process's, every thread included (the native addon's workers too).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { FailedPreconditionError } from "../errors.js";
import { sh } from "./exec.js";

/** One timed run. */
export interface Sample {
  /** Wall seconds of the run itself. */
  wall: number;
  /** Wall seconds including the `sync` of `syncPath` after the run (equal to `wall` without one). */
  synced: number;
  /** CPU seconds in user mode. */
  user: number;
  /** CPU seconds in the kernel. */
  sys: number;
}

/** Options of both timers. */
export interface TimerOptions {
  /** Sync the filesystem holding this path after the run and time that too (`sync -f`). */
  syncPath?: string;
  /** Daemons whose CPU (their own and their reaped children's) counts as the run's. */
  daemonPids?: number[];
}

/** Options of {@link timeCommand}. */
export interface CommandOptions extends TimerOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the command's stdout goes: a file descriptor, or discarded. @default "ignore" */
  stdout?: number | "ignore";
}

/** Kernel clock ticks per second of /proc times (USER_HZ, 100 on every Linux architecture Node runs on). */
const USER_HZ = 100;

/** User and system CPU seconds of a process from /proc: its own and its reaped children's. Zero when it is gone. */
export function processCpu(pid: number | "self", which: "own" | "children" | "both" = "both"): [number, number] {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may hold spaces: state is [0], utime [11], stime [12], cutime [13], cstime [14].
    const f = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    const own: [number, number] = [f[11]!, f[12]!];
    const kids: [number, number] = [f[13]!, f[14]!];
    const t = which === "own" ? own : which === "children" ? kids : [own[0] + kids[0], own[1] + kids[1]];
    return [t[0] / USER_HZ, t[1] / USER_HZ];
  } catch {
    return [0, 0];
  }
}

function daemonsCpu(pids: number[] = []): [number, number] {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    const [u, s] = processCpu(pid);
    user += u;
    sys += s;
  }
  return [user, sys];
}

async function syncedAfter(t0: bigint, syncPath: string | undefined, wall: number): Promise<number> {
  if (!syncPath) return wall;
  await sh("sync", ["-f", syncPath]);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/**
 * Times `fn` in this process.
 * @returns the sample and what `fn` returned
 */
export async function timeCall<T>(
  fn: () => Promise<T>,
  opts: TimerOptions = {},
): Promise<{ sample: Sample; result: T }> {
  const d0 = daemonsCpu(opts.daemonPids);
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const result = await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const d1 = daemonsCpu(opts.daemonPids);
  const synced = await syncedAfter(t0, opts.syncPath, wall);
  return {
    sample: { wall, synced, user: c.user / 1e6 + d1[0] - d0[0], sys: c.system / 1e6 + d1[1] - d0[1] },
    result,
  };
}

/** The wall seconds of `fn` in this process and its result: {@link timeCall} for callers that record wall time only. */
export async function wallSeconds<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const { sample, result } = await timeCall(fn);
  return [sample.wall, result];
}

/**
 * Runs `cmd args` as a child process and times it. Only one command may be
 * timed at a time in a process: the CPU comes from this process's
 * reaped-children times.
 * @throws ERR_BENCH_COMMAND when the command cannot start or exits non-zero (with its last stderr line)
 */
export async function timeCommand(cmd: string, args: string[], opts: CommandOptions = {}): Promise<Sample> {
  const d0 = daemonsCpu(opts.daemonPids);
  const k0 = processCpu("self", "children");
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", opts.stdout ?? "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-4096);
    });
    const fail = (why: string, cause?: unknown) =>
      reject(
        new FailedPreconditionError(
          "ERR_BENCH_COMMAND",
          `Cannot time a command: ${why} "${[cmd, ...args].join(" ")}"`,
          {
            cause,
          },
        ),
      );
    child.on("error", (err) => fail(err.message, err));
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else fail(`${signal ? `killed by ${signal}` : `exit ${code}`}: ${stderr.trim().split("\n").at(-1) ?? ""}`);
    });
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const k1 = processCpu("self", "children");
  const d1 = daemonsCpu(opts.daemonPids);
  const synced = await syncedAfter(t0, opts.syncPath, wall);
  return { wall, synced, user: k1[0] - k0[0] + d1[0] - d0[0], sys: k1[1] - k0[1] + d1[1] - d0[1] };
}
