/** Shared helpers for the thin-pool tests: pools that clean up after themselves, and the real thin tools. */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ExecutionContext } from "ava";
import { ThinPool, recoverCrashed, type CreatePoolOptions } from "../../src/thinpool/index.js";
import { tempDir } from "../helpers/tmp.js";

/** execFile as a promise with stdout/stderr as strings. */
export const run = promisify(execFile);

/**
 * SIGKILLs the whole pool daemon, its keeper first (which would restart the
 * daemon on the same FUSE connection), then the daemon: what a crash of both
 * leaves. Resolves once both are gone.
 */
export async function killDaemon(pool: ThinPool): Promise<void> {
  const keeper = Number((await readFile(pool.layout.keeperPidFile, "utf8").catch(() => "0")).trim());
  for (const pid of [keeper, pool.pid]) {
    if (!pid) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      continue; // already gone
    }
    for (let i = 0; i < 400 && (await running(pid)); i++) await new Promise((r) => setTimeout(r, 10));
  }
}

async function running(pid: number): Promise<boolean> {
  const st = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return st !== "" && !/\) Z /.test(st);
}

/** Stops the pool's daemon: a clean close, or SIGKILL plus crash recovery when that fails. */
export async function stopPool(pool: ThinPool): Promise<void> {
  try {
    await pool.close();
  } catch {
    await killDaemon(pool);
    await recoverCrashed(pool.layout);
  }
}

/** A fresh pool in a temp dir, closed (or killed and cleaned up) when the test ends. */
export async function makePool(
  t: ExecutionContext,
  opts: Partial<CreatePoolOptions> = {},
): Promise<{ pool: ThinPool; dir: string }> {
  const dir = await tempDir(t, "strata-pool-");
  const holder: { pool?: ThinPool } = {};
  t.teardown(async () => {
    if (holder.pool && existsSync(join(dir, "control.sock"))) await stopPool(holder.pool);
    else if (holder.pool) await recoverCrashed(holder.pool.layout);
  });
  holder.pool = await ThinPool.create({ dir, dataSize: 256 << 20, metadataSize: 16 << 20, ...opts });
  return { pool: holder.pool, dir };
}

/** Runs `thin_check` on a metadata file; resolves with its output, rejects when it finds damage. */
export async function thinCheck(metadataFile: string): Promise<string> {
  const { stdout, stderr } = await run("thin_check", [metadataFile]);
  return stdout + stderr;
}

/** One device of a `thin_dump` XML: details and the expanded virtual → data block map. */
export interface DumpedDevice {
  id: number;
  mappedBlocks: number;
  transaction: number;
  creationTime: number;
  snapTime: number;
  map: Map<number, number>;
}

/** Runs `thin_dump` and parses its XML into devices and mappings. */
export async function thinDump(
  metadataFile: string,
): Promise<{ transaction: number; time: number; devices: DumpedDevice[] }> {
  const { stdout } = await run("thin_dump", [metadataFile], { maxBuffer: 256 << 20 });
  const sb = /<superblock [^>]*time="(\d+)" transaction="(\d+)"/.exec(stdout);
  const devices: DumpedDevice[] = [];
  let cur: DumpedDevice | null = null;
  for (const line of stdout.split("\n")) {
    const attr = (name: string) => Number(new RegExp(`${name}="(\\d+)"`).exec(line)?.[1]);
    if (line.includes("<device ")) {
      cur = {
        id: attr("dev_id"),
        mappedBlocks: attr("mapped_blocks"),
        transaction: attr("transaction"),
        creationTime: attr("creation_time"),
        snapTime: attr("snap_time"),
        map: new Map(),
      };
      devices.push(cur);
    } else if (cur && line.includes("<single_mapping ")) {
      cur.map.set(attr("origin_block"), attr("data_block"));
    } else if (cur && line.includes("<range_mapping ")) {
      const o = attr("origin_begin");
      const d = attr("data_begin");
      for (let i = 0; i < attr("length"); i++) cur.map.set(o + i, d + i);
    }
  }
  return { time: Number(sb?.[1]), transaction: Number(sb?.[2]), devices };
}
