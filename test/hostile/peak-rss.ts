/**
 * Preloaded into a `strata` process by the hostile tests (`node --import
 * peak-rss.js main.js …`): when the process exits, its peak resident set
 * size (VmHWM of /proc/self/status, in bytes) is written to the file named
 * by PEAK_RSS_FILE. Test code only.
 */
import { readFileSync, writeFileSync } from "node:fs";

const out = process.env.PEAK_RSS_FILE;
if (out) {
  process.on("exit", () => {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    writeFileSync(out, String(Number(kb) * 1024));
  });
}
