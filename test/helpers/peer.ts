/** Running real peer tools (GNU tar) from tests, and tree facts a manifest does not show. */
import { execFile } from "node:child_process";
import { createWriteStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Runs GNU tar with `args`; resolves to stdout, rejects with stderr in the message. */
export async function gnuTar(args: string[]): Promise<string> {
  try {
    const { stdout } = await run("tar", args, {
      maxBuffer: 64 << 20,
      encoding: "utf8",
      env: { ...process.env, TZ: "UTC" },
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`tar ${args.join(" ")} failed: ${e.stderr ?? e.message}`);
  }
}

/** Writes a stream to a file. */
export async function saveStream(stream: Readable, file: string): Promise<void> {
  await pipeline(stream, createWriteStream(file));
}

/** Groups of paths (sorted) that share one inode, for checking hardlinks survive. */
export async function linkGroups(root: string): Promise<string[][]> {
  const byIno = new Map<string, string[]>();
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(rel ? join(root, rel) : root)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, r));
      if (st.isDirectory()) await walk(r);
      else if (st.nlink > 1) {
        const k = `${st.dev}:${st.ino}`;
        byIno.set(k, [...(byIno.get(k) ?? []), r]);
      }
    }
  }
  await walk("");
  return [...byIno.values()].map((g) => g.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
}
