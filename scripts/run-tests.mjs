// Runs the formatter check and the ava suite, then prints the summary line CI
// reads: "N passed, N failed" (", N skipped" when any were skipped). ava's own
// reporter output is passed through; its summary lines are parsed (the TAP
// reporter was dropped: it crashes on some failure objects and hides results).
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";

const lint = spawnSync("node_modules/.bin/prettier", ["--check", "--log-level=warn", "src", "test", "scripts"], {
  stdio: "inherit",
});
const lintFailed = lint.status !== 0;

const ava = spawn("node_modules/.bin/ava", [...process.argv.slice(2)], {
  stdio: ["ignore", "pipe", "pipe"],
  env: { ...process.env, FORCE_COLOR: "0" },
});
const counts = { passed: 0, failed: 0, skipped: 0, errors: 0 };
const failures = [];
const summary = [
  [/^\s*(\d+) tests? passed/, "passed"],
  [/^\s*(\d+) tests? failed/, "failed"],
  [/^\s*(\d+) tests? skipped/, "skipped"],
  [/^\s*(\d+) (uncaught exceptions?|unhandled rejections?|tests? remained pending|tests? timed out)/, "errors"],
];
async function pump(stream, out) {
  for await (const line of createInterface({ input: stream })) {
    out.write(`${line}\n`);
    for (const [re, key] of summary) {
      const m = re.exec(line);
      if (m) counts[key] = Number(m[1]);
    }
    const fail = /^\s*✘ (?:\[fail\]: )?(.*)/.exec(line);
    if (fail) failures.push(fail[1]);
  }
}
await Promise.all([pump(ava.stdout, process.stdout), pump(ava.stderr, process.stderr)]);
const code = await new Promise((res) => ava.on("close", res));
let failed = counts.failed + counts.errors;
if (code !== 0 && failed === 0) failed = 1; // ava failed without a count (crash, timeout, no tests)
if (lintFailed) {
  console.log("lint: prettier --check failed (run npm run format)");
  failed += 1;
}
for (const f of failures) console.log(`FAILED: ${f}`);
console.log(`${counts.passed} passed, ${failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
