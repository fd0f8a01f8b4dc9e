/** Runs the built `strata` command as a child and reports its peak RSS (VmHWM) as it exits. */
import { execFile } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CLI, type CliResult } from "../helpers/cli.js";

const HOOK = join(dirname(fileURLToPath(import.meta.url)), "hwm-hook.js");

/** {@link CliResult} and the child's peak resident set in MiB (NaN if it did not exit by itself). */
export async function strataPeak(args: string[]): Promise<CliResult & { peakMiB: number }> {
  const hwm = join(tmpdir(), `strata-hwm-${process.pid}-${Math.random().toString(16).slice(2)}`);
  const res = await new Promise<CliResult>((resolve) => {
    execFile(
      process.execPath,
      ["--import", pathToFileURL(HOOK).href, CLI, ...args],
      { env: { ...process.env, STRATA_TEST_HWM_FILE: hwm }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
      },
    );
  });
  const text = await readFile(hwm, "utf8").catch(() => "");
  const kib = text ? Number(text) : Number.NaN;
  await rm(hwm, { force: true });
  return { ...res, peakMiB: kib / 1024 };
}
