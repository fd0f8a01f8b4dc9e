#!/usr/bin/env node
// Start-up time of the `strata` command, verb by verb, against Node's own
// floor (`node -e 0`): whole processes, RUNS rounds in alternating order,
// medians. Needs root and a built tree (npm run build).
//
//   node scripts/startup-times.mjs [--runs 15] [--root DIR] [--driver overlay]
//
// The store goes under --root (default: a new temp dir, removed after); for
// figures worth quoting, give a directory on a freshly made filesystem.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "15" }, root: { type: "string" }, driver: { type: "string" } },
});
const RUNS = Number(values.runs);
const CLI = new URL("../dist/src/cli/main.js", import.meta.url).pathname;
const work = values.root ?? mkdtempSync(join(tmpdir(), "strata-startup-"));
const g = ["--root", join(work, "root"), ...(values.driver ? ["--driver", values.driver] : [])];

function time(args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return ms;
}
const strata = (...a) => [CLI, ...g, ...a];

// A one-file image to create containers on (a tar written by hand: one 512-byte header, no body).
const tar = Buffer.alloc(2048);
tar.write("hello", 0);
tar.write("0000644\0", 100);
tar.write("0000000\0", 108);
tar.write("0000000\0", 116);
tar.write("00000000000\0", 124);
tar.write("14000000000\0", 136);
tar.write("0", 156);
tar.write("ustar\x0000", 257);
let sum = 0;
tar.fill(" ", 148, 156);
for (let i = 0; i < 512; i++) sum += tar[i];
tar.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
writeFileSync(join(work, "layer.tar"), tar);
time(strata("import", join(work, "layer.tar"), "startup:1"));

const cases = {
  "node -e 0": () => time(["-e", "0"]),
  "strata --help": () => time([CLI, "--help"]),
  "strata images": () => time(strata("images")),
  "strata create": (i) => time(strata("create", `c${i}`, "startup:1")),
  "strata mount": (i) => time(strata("mount", `c${i}`)),
};
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
try {
  for (let i = 0; i < RUNS; i++) {
    // create must come before mount in a round; the others rotate around them.
    const names = Object.keys(cases);
    const order = i % 2 === 0 ? names : [...names].reverse();
    const fixed = order.filter((n) => n !== "strata mount");
    fixed.splice(fixed.indexOf("strata create") + 1, 0, "strata mount");
    for (const n of fixed) samples[n].push(cases[n](i));
    time(strata("rm", "-f", `c${i}`));
  }
} finally {
  if (!values.root) rmSync(work, { recursive: true, force: true });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const floor = median(samples["node -e 0"]);
console.log(`median of ${RUNS} runs (ms), Node ${process.version}, store ${g.join(" ")}`);
for (const [n, xs] of Object.entries(samples))
  console.log(`${n.padEnd(16)} ${median(xs).toFixed(1).padStart(7)}  ${(median(xs) / floor).toFixed(2)}x node -e 0`);
