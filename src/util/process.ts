/**
 * Process identity for short-lived holds: a pid plus its start time (field
 * 22 of /proc/<pid>/stat), so a recycled pid is not mistaken for the holder.
 *
 * @module
 */
import { readFile } from "node:fs/promises";

/** A process: its pid and start time (so a recycled pid is not the same process). */
export interface ProcessIdentity {
  pid: number;
  start: string;
}

async function startTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parentheses: split after the last ")".
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19] ?? null; // field 22 overall
  } catch {
    return null;
  }
}

let self: ProcessIdentity | undefined;

/** This process's identity. */
export async function currentProcess(): Promise<ProcessIdentity> {
  self ??= { pid: process.pid, start: (await startTime(process.pid)) ?? "0" };
  return self;
}

/** True while the process that recorded `id` still runs. */
export async function isAlive(id: ProcessIdentity): Promise<boolean> {
  return (await startTime(id.pid)) === id.start;
}
