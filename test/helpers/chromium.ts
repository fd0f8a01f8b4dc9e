/**
 * Headless Chromium for tests that look at a page as a person would:
 * installed from Debian when missing (idempotent; `apt-get update` only when
 * the install fails without it), run with a fresh profile and no network
 * chatter.
 */
import { execFile } from "node:child_process";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ExecutionContext } from "ava";
import { tempDir } from "./tmp.js";

const run = promisify(execFile);
const CHROMIUM = "/usr/bin/chromium";
const APT = ["-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends", "chromium"];

/** The chromium binary, installing the Debian package first when it is missing. */
export async function ensureChromium(): Promise<string> {
  try {
    await access(CHROMIUM);
    return CHROMIUM;
  } catch {
    // install below
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    await run("apt-get", APT, { env, maxBuffer: 64 << 20 });
  } catch {
    await run("apt-get", ["-o", "DPkg::Lock::Timeout=600", "update", "-q"], { env, maxBuffer: 64 << 20 });
    await run("apt-get", APT, { env, maxBuffer: 64 << 20 });
  }
  await access(CHROMIUM);
  return CHROMIUM;
}

async function chromium(t: ExecutionContext, extra: string[], url: string): Promise<string> {
  const bin = await ensureChromium();
  const profile = await tempDir(t, "strata-chromium-");
  const args = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    `--user-data-dir=${join(profile, "profile")}`,
    ...extra,
    url,
  ];
  const { stdout } = await run(bin, args, { maxBuffer: 256 << 20, timeout: 120_000 });
  return stdout;
}

/** Renders `file` and writes a PNG screenshot of `width`×`height` to `png`. */
export async function screenshot(
  t: ExecutionContext,
  file: string,
  png: string,
  width = 1400,
  height = 2400,
): Promise<void> {
  await chromium(t, [`--window-size=${width},${height}`, `--screenshot=${png}`], `file://${file}`);
}

/** The DOM of `file` after Chromium has loaded it (and run its scripts) in a `width`×`height` window. */
export async function dumpDom(t: ExecutionContext, file: string, width = 1400, height = 2400): Promise<string> {
  return chromium(t, [`--window-size=${width},${height}`, "--dump-dom"], `file://${file}`);
}
