/**
 * applyLayer() against crafted malicious and malformed tars
 * (test/fixtures/malicious-tars.ts): each case ends in its documented error
 * code or its documented tree, and the sentinel file and directory beside
 * the root are never touched: same content, same times, nothing new
 * outside the root.
 */
import { lstat, mkdir, readdir, readFile, readlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { applyLayer } from "../../src/diff/index.js";
import { StrataError } from "../../src/errors.js";
import { maliciousCases } from "../fixtures/malicious-tars.js";
import { chunks } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";

/** Builds <base>/root (with old.txt and olddir/x from "a lower layer"), the sentinels, and returns base. */
async function layout(base: string): Promise<void> {
  const root = join(base, "root");
  await mkdir(join(root, "olddir"), { recursive: true });
  await writeFile(join(root, "old.txt"), "old");
  await writeFile(join(root, "olddir", "x"), "x");
  await writeFile(join(base, "sentinel.txt"), "sentinel");
  await mkdir(join(base, "sentinel-dir"));
  await writeFile(join(base, "sentinel-dir", "inside.txt"), "inside");
  for (const p of ["sentinel.txt", "sentinel-dir/inside.txt", "sentinel-dir"]) await utimes(join(base, p), 1e9, 1e9);
}

const outsideRoot = (rel: string) => rel === "root" || rel.startsWith("root/");

async function describe(path: string): Promise<string | null> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return null;
  }
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return `symlink:${await readlink(path)}`;
  if (st.isFile()) return `file:${await readFile(path, "utf8")}`;
  if (st.isCharacterDevice())
    return `char:${Math.floor(st.rdev / 256) & 0xfff},${(st.rdev & 0xff) | ((st.rdev >> 12) & ~0xff)}`;
  if (st.isFIFO()) return "fifo";
  return "other";
}

// Built once with a placeholder to learn the ids; each test rebuilds its case for its own temp dir.
const ids = maliciousCases("/placeholder").map((c) => c.id);

test("the fixture script makes at least 25 cases with unique ids", (t) => {
  t.true(ids.length >= 25, `${ids.length} cases`);
  t.is(new Set(ids).size, ids.length);
});

for (const id of ids) {
  test(`applyLayer() on malicious tar "${id}" ends as documented and leaves the outside alone`, async (t) => {
    const base = await tempDir(t, "strata-evil-");
    await layout(base);
    const c = maliciousCases(base).find((x) => x.id === id)!;
    t.log(c.about);
    const before = await manifest(base, { exclude: outsideRoot });
    const root = join(base, "root");
    let error: unknown;
    try {
      await applyLayer(root, chunks(c.tar, 700));
    } catch (err) {
      error = err;
    }
    if ("error" in c.outcome) {
      t.true(error instanceof StrataError, `expected ${c.outcome.error}, got ${String(error)}`);
      t.is((error as StrataError).code, c.outcome.error, String(error));
    } else {
      t.is(error, undefined, `expected a tree, got ${String(error)}`);
      for (const [rel, want] of Object.entries(c.outcome.tree)) t.is(await describe(join(root, rel)), want, rel);
      for (const [rel, [uid, gid]] of Object.entries(c.outcome.owners ?? {})) {
        const st = await lstat(join(root, rel));
        t.deepEqual([st.uid, st.gid], [uid, gid], rel);
      }
    }
    t.deepEqual(await manifest(base, { exclude: outsideRoot }), before, "nothing outside the root changed");
    t.deepEqual((await readdir(base)).sort(), ["root", "sentinel-dir", "sentinel.txt"]);
  });
}
