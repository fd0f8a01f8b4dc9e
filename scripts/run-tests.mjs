// Runs the linters (scripts/lint.mjs: prettier, eslint, depcruise,
// lint-native) beside the ava suite, then prints the summary line CI reads:
// "N passed, N failed" (", N skipped" when any were skipped); each failed
// linter counts as one failure. The linters run niced, so the tests keep the
// cores they need, and their output is printed after ava's. ava's own
// reporter output is passed through; its summary lines are parsed (the TAP
// reporter was dropped: it crashes on some failure objects and hides results).
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { PassThrough } from "node:stream";
import { runLint } from "./lint.mjs";

const lintOut = new PassThrough();
const lintText = [];
lintOut.on("data", (c) => lintText.push(c));
const linting = runLint(lintOut, { nice: true });

const ava = spawn("node_modules/.bin/ava", [...process.argv.slice(2)], {
  stdio: ["ignore", "pipe", "pipe"],
  env: { ...process.env, FORCE_COLOR: "0" },
});
const counts = { passed: 0, failed: 0, skipped: 0, errors: 0 };
const failures = [];
// ava prints no "N tests passed" line when some failed: the ✔ lines are counted too.
let ticks = 0;
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
    if (/^\s*✔ /.test(line)) ticks++;
  }
}
await Promise.all([pump(ava.stdout, process.stdout), pump(ava.stderr, process.stderr)]);
const code = await new Promise((res) => ava.on("close", res));
let failed = counts.failed + counts.errors;
if (code !== 0 && failed === 0) failed = 1; // ava failed without a count (crash, timeout, no tests)
const lintFailures = await linting;
process.stdout.write(Buffer.concat(lintText));
for (const name of lintFailures) console.log(`FAILED: lint: ${name}`);
failed += lintFailures.length;
for (const f of failures) console.log(`FAILED: ${f}`);
console.log(
  `${Math.max(counts.passed, ticks)} passed, ${failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ""}`,
);
process.exit(failed > 0 ? 1 : 0);
