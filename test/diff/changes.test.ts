/**
 * changes(): each of Docker's ChangesDirs rules (DESIGN.md "Changes",
 * reference §2.2) on real trees.
 */
import { execFileSync } from "node:child_process";
import { chmod, chown, link, mkdir, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { capV2 } from "../helpers/gen-tree.js";
import { tempDir } from "../helpers/tmp.js";
import { C, lsetxattr, mknod, scanPair, utimensat } from "../../src/native.js";
import { changes, sameFsTime } from "../../src/diff/changes.js";

const T = { sec: 1_600_000_000, nsec: 0 };

/** old/ with a small tree (fixed times), new/ a full copy (cp -a keeps ns times); returns both. */
async function pair(t: ExecutionContext) {
  const base = await tempDir(t);
  const old = join(base, "old");
  await mkdir(join(old, "dir/sub"), { recursive: true });
  await writeFile(join(old, "file"), "content");
  await writeFile(join(old, "dir/a"), "a");
  await writeFile(join(old, "dir/sub/b"), "b");
  await mknod(join(old, "dev"), C.S_IFCHR | 0o600, 1, 3);
  for (const p of ["file", "dir/a", "dir/sub/b", "dev", "dir/sub", "dir"]) {
    await utimensat(C.AT_FDCWD, join(old, p), T, { sec: T.sec, nsec: 123_456_789 });
  }
  const nu = join(base, "new");
  execFileSync("cp", ["-a", old, nu]);
  return { old, nu };
}

const list = (cs: Awaited<ReturnType<typeof changes>>) => cs.map((c) => `${c.kind} ${c.path}`);

test("changes() of a full copy is empty", async (t) => {
  const { old, nu } = await pair(t);
  t.deepEqual(await changes(nu, old), []);
});

test("changes() reports mode, uid, gid and rdev differences as C", async (t) => {
  const { old, nu } = await pair(t);
  await chmod(join(nu, "file"), 0o600);
  await chown(join(nu, "dir/a"), 1000, 0);
  await chown(join(nu, "dir/sub/b"), 0, 1000);
  await rm(join(nu, "dev"));
  await mknod(join(nu, "dev"), C.S_IFCHR | 0o600, 1, 5);
  await utimensat(C.AT_FDCWD, join(nu, "dev"), T, { sec: T.sec, nsec: 123_456_789 });
  t.deepEqual(list(await changes(nu, old)), ["C /dev", "C /dir", "C /dir/a", "C /dir/sub", "C /dir/sub/b", "C /file"]);
});

test("changes() compares security.capability bytes, and no other xattr", async (t) => {
  const { old, nu } = await pair(t);
  const other = capV2();
  other.writeUInt32LE(1 << 12, 4); // a different capability set
  await lsetxattr(join(old, "file"), "security.capability", capV2());
  await lsetxattr(join(nu, "file"), "security.capability", other);
  await lsetxattr(join(nu, "dir/a"), "user.other", Buffer.from("ignored"));
  t.deepEqual(list(await changes(nu, old)), ["C /file"]);
  await lsetxattr(join(nu, "file"), "security.capability", capV2());
  t.deepEqual(await changes(nu, old), []);
});

test("changes() sees a size difference even with the same mtime", async (t) => {
  const { old, nu } = await pair(t);
  await truncate(join(nu, "file"), 3);
  await utimensat(C.AT_FDCWD, join(nu, "file"), T, { sec: T.sec, nsec: 123_456_789 });
  t.deepEqual(list(await changes(nu, old)), ["C /file"]);
});

test("changes() time rule: seconds must match; nanoseconds must match unless either is zero", async (t) => {
  const { old, nu } = await pair(t);
  const f = join(nu, "file");
  await utimensat(C.AT_FDCWD, f, T, { sec: T.sec, nsec: 0 }); // as extracted from a tar
  t.deepEqual(await changes(nu, old), [], "nsec 0 on one side is a wildcard");
  await utimensat(C.AT_FDCWD, f, T, { sec: T.sec, nsec: 999 });
  t.deepEqual(list(await changes(nu, old)), ["C /file"], "different non-zero nsec");
  await utimensat(C.AT_FDCWD, f, T, { sec: T.sec + 1, nsec: 0 });
  t.deepEqual(list(await changes(nu, old)), ["C /file"], "different seconds");
  t.true(sameFsTime(5, 0, 5, 7));
  t.false(sameFsTime(5, 1, 5, 7));
  t.false(sameFsTime(5, 0, 6, 0));
});

test("changes() ignores a directory's own mtime and size", async (t) => {
  const { old, nu } = await pair(t);
  await utimensat(C.AT_FDCWD, join(nu, "dir"), T, { sec: T.sec + 100, nsec: 5 });
  // a create-and-delete grows nothing visible but changes the directory's mtime (and often size)
  for (let i = 0; i < 200; i++) await writeFile(join(nu, "dir/sub", `tmp-${i}-${"x".repeat(60)}`), "");
  for (let i = 0; i < 200; i++) await rm(join(nu, "dir/sub", `tmp-${i}-${"x".repeat(60)}`));
  t.deepEqual(await changes(nu, old), []);
});

test("changes() lists an added directory and every entry below it as A, parents first", async (t) => {
  const { old, nu } = await pair(t);
  await mkdir(join(nu, "new/deeper"), { recursive: true });
  await writeFile(join(nu, "new/deeper/x"), "x");
  await writeFile(join(nu, "new/y"), "y");
  t.deepEqual(list(await changes(nu, old)), ["A /new", "A /new/deeper", "A /new/deeper/x", "A /new/y"]);
});

test("changes() lists a deleted directory as one D, not its children", async (t) => {
  const { old, nu } = await pair(t);
  await rm(join(nu, "dir"), { recursive: true });
  t.deepEqual(list(await changes(nu, old)), ["D /dir"]);
});

test("changes() of a directory replaced by a file: one C, no D for the old children", async (t) => {
  const { old, nu } = await pair(t);
  await rm(join(nu, "dir"), { recursive: true });
  await writeFile(join(nu, "dir"), "now a file");
  t.deepEqual(list(await changes(nu, old)), ["C /dir"]);
});

test("changes() of a file replaced by a directory: C for it, A for its children", async (t) => {
  const { old, nu } = await pair(t);
  await rm(join(nu, "file"));
  await mkdir(join(nu, "file"));
  await writeFile(join(nu, "file/inside"), "i");
  t.deepEqual(list(await changes(nu, old)), ["C /file", "A /file/inside"]);
});

test("changes() inserts a C for an unchanged parent before its children's changes, never for /", async (t) => {
  const { old, nu } = await pair(t);
  await writeFile(join(nu, "dir/sub/b"), "bb");
  await rm(join(nu, "dir/a"));
  await writeFile(join(nu, "top"), "t");
  t.deepEqual(list(await changes(nu, old)), ["C /dir", "C /dir/sub", "C /dir/sub/b", "D /dir/a", "A /top"]);
});

test("changes() against null lists everything as added", async (t) => {
  const { old } = await pair(t);
  t.deepEqual(list(await changes(old, null)), [
    "A /dev",
    "A /dir",
    "A /dir/a",
    "A /dir/sub",
    "A /dir/sub/b",
    "A /file",
  ]);
});

test("changes() prunes names with the same inode on the same device without comparing them", async (t) => {
  const base = await tempDir(t);
  const old = join(base, "old");
  const nu = join(base, "new");
  await mkdir(join(old, "d"), { recursive: true });
  await writeFile(join(old, "d/shared"), "s");
  await writeFile(join(old, "d/own"), "o");
  execFileSync("cp", ["-al", old, nu]); // a hardlinked copy: files share inodes, dirs do not
  const scan = await scanPair(join(nu, "d"), join(old, "d"));
  t.deepEqual(scan.names, [], "hardlinked names are dropped by the walk itself");
  await rm(join(nu, "d/own"));
  await writeFile(join(nu, "d/own"), "o2");
  const scan2 = await scanPair(join(nu, "d"), join(old, "d"));
  t.deepEqual(scan2.names, ["own"]);
  t.deepEqual(list(await changes(nu, old)), ["C /d", "C /d/own"]);
  // a shared inode changed in place shows in neither tree: the rule that makes overlay lowers cheap
  await link(join(old, "d/shared"), join(base, "extra-link"));
  await chmod(join(nu, "d/shared"), 0o600);
  t.deepEqual(list(await changes(nu, old)), ["C /d", "C /d/own"]);
});
