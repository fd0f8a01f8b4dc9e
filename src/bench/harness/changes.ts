/**
 * The file changes the diff/commit workloads make in a container: half of
 * them rewrite files of the ten-layer image, the rest add new files. The
 * same function writes into a strata mount, a Docker UpperDir or a umoci
 * bundle, so every subject diffs the same change.
 *
 * @module
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { imageFileName } from "../corpus.js";

/** Relative paths (no leading slash) of the `n` files changed, given the image's files per layer. */
export function changedPaths(n: number, layers: number, filesPerLayer: number): string[] {
  const modify = Math.min(Math.floor(n / 2), layers * filesPerLayer);
  const out: string[] = [];
  for (let i = 0; i < modify; i++) out.push(imageFileName(i % layers, Math.floor(i / layers)));
  for (let i = modify; i < n; i++) out.push(`bench/changes/d${i % 100}/n${i}.txt`);
  return out;
}

/** Writes the changes under `root` (creating parent directories, as a copy-up would). */
export async function writeChanges(root: string, paths: string[]): Promise<void> {
  const dirs = new Set(paths.map((p) => dirname(p)));
  for (const d of dirs) await mkdir(join(root, d), { recursive: true });
  let i = 0;
  for (const p of paths) await writeFile(join(root, p), `changed by strata bench, file ${i++}\n`.repeat(8));
}
