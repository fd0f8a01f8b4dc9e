/** Runs the built `strata` command as a separate process, as a user would. */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = join(dirname(fileURLToPath(import.meta.url)), "../../src/cli/main.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function strata(
  args: string[],
  opts: { input?: Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...opts.env }, maxBuffer: 64 << 20, ...(opts.cwd ? { cwd: opts.cwd } : {}) },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
      },
    );
    if (opts.input) child.stdin?.end(opts.input);
  });
}

/** Starts `strata` without waiting (for crash tests). */
export function spawnStrata(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
}
