// Runs the linter and the ava suite (TAP reporter), then prints the summary
// line CI reads: "N passed, N failed" (", N skipped" when any were skipped).
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";

const lint = spawnSync("npx", ["--no-install", "prettier", "--check", "--log-level=warn", "src", "test", "scripts"], {
  stdio: "inherit",
});
const lintFailed = lint.status !== 0;

const ava = spawn("npx", ["--no-install", "ava", "--tap", ...process.argv.slice(2)], {
  stdio: ["ignore", "pipe", "inherit"],
});
let pass = 0;
let fail = 0;
let skip = 0;
const failures = [];
for await (const line of createInterface({ input: ava.stdout })) {
  console.log(line);
  const num = (re) => Number(re.exec(line)?.[1] ?? Number.NaN);
  if (line.startsWith("# pass ")) pass = num(/^# pass (\d+)/);
  else if (line.startsWith("# fail ")) fail = num(/^# fail (\d+)/);
  else if (line.startsWith("# skip ")) skip = num(/^# skip (\d+)/);
  else if (line.startsWith("not ok ") && !/# (SKIP|TODO)/.test(line)) failures.push(line.replace(/^not ok \d+ - /, ""));
}
const code = await new Promise((res) => ava.on("close", res));
if (code !== 0 && fail === 0) fail = 1; // ava itself failed (crash, timeout, no tests)
if (lintFailed) {
  console.log("lint: prettier --check failed (run npm run format)");
  fail += 1;
}
for (const f of failures) console.log(`FAILED: ${f}`);
console.log(`${pass} passed, ${fail} failed${skip ? `, ${skip} skipped` : ""}`);
process.exit(fail > 0 ? 1 : 0);
