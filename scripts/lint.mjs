// The project's linters, run at the same time: Prettier (layout), ESLint (bugs
// and doc comments), dependency-cruiser (the module map of DESIGN.md) and
// scripts/lint-native.sh (clang-format and clang-tidy on native/). Each one's
// output is printed whole when it ends, so parallel runs do not interleave.
// `npm run lint` runs this file; scripts/run-tests.mjs calls runLint().
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The linters: a name for the failure line and the command that runs it. */
export const linters = [
  {
    name: "prettier",
    cmd: "node_modules/.bin/prettier",
    args: ["--check", "--log-level=warn", "src", "test", "scripts"],
  },
  { name: "eslint", cmd: "node_modules/.bin/eslint", args: ["."] },
  {
    name: "depcruise",
    cmd: "node_modules/.bin/depcruise",
    args: ["src", "test", "scripts", "--config", ".dependency-cruiser.cjs"],
  },
  { name: "lint-native", cmd: "bash", args: ["scripts/lint-native.sh"] },
];

const root = fileURLToPath(new URL("..", import.meta.url));

function run({ name, cmd, args }, out, nice) {
  // Niced beside the tests: the linters take the CPU the tests leave idle.
  if (nice) [cmd, args] = ["nice", ["-n", "19", cmd, ...args]];
  return new Promise((resolve) => {
    const started = Date.now();
    const env = { ...process.env, NO_COLOR: "1" }; // plain text: the output goes to logs
    delete env.FORCE_COLOR; // some colour libraries turn colour on when it is set at all, even to 0
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env });
    const chunks = [];
    child.stdout.on("data", (c) => chunks.push(c));
    child.stderr.on("data", (c) => chunks.push(c));
    let done = false;
    const finish = (ok, extra = "") => {
      if (done) return; // a command that cannot start reports "error" and then "close"
      done = true;
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      out.write(Buffer.concat(chunks));
      if (extra) out.write(`${extra}\n`);
      out.write(`lint: ${name} ${ok ? "passed" : "failed"} (${seconds}s)\n`);
      resolve(ok);
    };
    child.on("error", (err) => finish(false, `lint: cannot run ${cmd}: ${err.message}`));
    child.on("close", (code) => finish(code === 0));
  });
}

/**
 * Runs every linter concurrently, writing each one's output to `out` as it
 * ends (at the lowest CPU priority when `nice`); resolves to the names of
 * those that failed.
 */
export async function runLint(out = process.stdout, { nice = false } = {}) {
  const ok = await Promise.all(linters.map((l) => run(l, out, nice)));
  return linters.filter((_, i) => !ok[i]).map((l) => l.name);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const failed = await runLint();
  for (const name of failed) console.log(`lint: ${name} failed`);
  process.exit(failed.length > 0 ? 1 : 0);
}
