/**
 * Preloaded (`node --import`) into a `strata` child by `peak-rss.ts`: when
 * the process exits, its peak resident set (VmHWM from /proc/self/status,
 * in KiB) is written to the file named by STRATA_TEST_HWM_FILE.
 */
import { readFileSync, writeFileSync } from "node:fs";

const out = process.env.STRATA_TEST_HWM_FILE;
if (out) {
  process.on("exit", () => {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    writeFileSync(out, m ? m[1]! : "");
  });
}
