/**
 * The machine a run was measured on: cores, CPU model, memory, kernel, and
 * the filesystem the inputs (corpus, archives) are read from. The timed
 * work itself runs on fresh filesystems (`fresh-fs.ts`).
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import { backingFs } from "../graphdriver/fsmagic.js";

/** Recorded in results.json beside the figures. */
export interface MachineInfo {
  hostname: string;
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  os: string;
  node: string;
  /** Where the inputs are read from. */
  inputDir: string;
  /** Filesystem of {@link inputDir}. */
  inputFs: string;
  /** The device and mount options of that filesystem, from mountinfo. */
  inputMount: string;
}

async function mountOf(path: string): Promise<string> {
  try {
    const lines = (await readFile("/proc/self/mountinfo", "utf8")).split("\n");
    let best = { len: -1, desc: "" };
    for (const l of lines) {
      const f = l.split(" ");
      const mp = f[4];
      if (!mp) continue;
      const sep = f.indexOf("-");
      if ((path === mp || path.startsWith(mp.endsWith("/") ? mp : `${mp}/`)) && mp.length > best.len)
        best = { len: mp.length, desc: `${f[sep + 2]} on ${mp} type ${f[sep + 1]} (${f[5]})` };
    }
    return best.desc;
  } catch {
    return "";
  }
}

/** Facts about this machine and the filesystem of `inputDir` (an absolute path that exists). */
export async function machineInfo(inputDir: string): Promise<MachineInfo> {
  let osName = `${os.type()} ${os.release()}`;
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)/m.exec(await readFile("/etc/os-release", "utf8"));
    if (m) osName = m[1]!;
  } catch {
    // keep the generic name
  }
  return {
    hostname: os.hostname(),
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    os: osName,
    node: process.version,
    inputDir,
    inputFs: (await backingFs(inputDir)).name,
    inputMount: await mountOf(inputDir),
  };
}
