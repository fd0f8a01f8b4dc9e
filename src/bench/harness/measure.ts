/**
 * What the harness measures besides time (`../timer.ts`): peak resident
 * memory of this process (VmHWM, reset through /proc/self/clear_refs), disk
 * space of a tree; and the recorder that gathers samples into medians with
 * min/max (`../stats.ts`).
 *
 * @module
 */
import { lstat, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { summarize } from "../stats.js";
import type { Family } from "./options.js";

/** Resets this process's peak RSS (VmHWM); false where the kernel does not allow it. */
export async function resetPeakRss(): Promise<boolean> {
  try {
    await writeFile("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** This process's peak resident set size in bytes (VmHWM). */
export async function peakRss(): Promise<number> {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(await readFile("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

/**
 * Bytes allocated to the tree at `dir` (st_blocks × 512), each inode counted
 * once, not crossing into other filesystems (mounts inside a driver home).
 */
export async function diskUsage(dir: string): Promise<number> {
  const root = await lstat(dir, { bigint: true });
  const seen = new Set<bigint>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      const st = await lstat(p, { bigint: true }).catch(() => undefined);
      if (!st || st.dev !== root.dev) continue;
      if (!seen.has(st.ino)) {
        seen.add(st.ino);
        total += Number(st.blocks) * 512;
      }
      if (st.isDirectory()) await walk(p);
    }
  };
  total += Number(root.blocks) * 512;
  await walk(dir);
  return total;
}

/** Unit of a measurement: seconds or bytes (lower is better for both). */
export type Unit = "s" | "bytes";

/** One workload measured for one subject (a driver or a peer) over the runs. */
export interface Measurement {
  /** Stable id, e.g. `apply/smallfiles`, `commit/1000`. */
  workload: string;
  family: Family;
  /** Driver name (`vfs`, `overlay`, …) or peer name (`tar`, `docker`, …). */
  subject: string;
  kind: "driver" | "peer";
  unit: Unit;
  samples: number[];
  median: number;
  min: number;
  max: number;
  /** What exactly the peer did, where it differs from strata's operation. */
  note?: string;
}

/** Gathers samples as the run goes; `measurements()` computes the statistics. */
export class Recorder {
  #m = new Map<string, Omit<Measurement, "median" | "min" | "max">>();
  /** Called after each sample (progress output). */
  onSample: (m: { subject: string; workload: string; value: number; unit: Unit }) => void = () => {};

  add(
    subject: string,
    kind: "driver" | "peer",
    family: Family,
    workload: string,
    unit: Unit,
    value: number,
    note?: string,
  ): void {
    const key = `${subject}\0${workload}`;
    let m = this.#m.get(key);
    if (!m) {
      m = { workload, family, subject, kind, unit, samples: [], ...(note ? { note } : {}) };
      this.#m.set(key, m);
    }
    m.samples.push(value);
    this.onSample({ subject, workload, value, unit });
  }

  measurements(): Measurement[] {
    return [...this.#m.values()].map((m) => ({ ...m, ...summarize(m.samples) }));
  }
}
