/**
 * removeTreeAt (native/remove_tree.cc): removal by file descriptor at any
 * depth, never through a symlink, never into a mounted filesystem.
 */
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { C, close, mkdirat, mount, openat2, removeTreeAt, umount2 } from "../../src/native.js";
import { tempDir } from "../helpers/tmp.js";

const DEPTH = Number(process.env.STRATA_DEEP_LAYER_DEPTH ?? 3000);

/** `<dir>/top/a/a/…/a` (`depth` levels, far past PATH_MAX), made one name at a time. */
async function deepTree(dir: string, depth: number): Promise<void> {
  await mkdir(join(dir, "top"));
  let fd = await openat2(C.AT_FDCWD, join(dir, "top"), C.O_PATH | C.O_DIRECTORY);
  for (let i = 0; i < depth; i++) {
    await mkdirat(fd, "a", 0o755);
    const next = await openat2(fd, "a", C.O_PATH | C.O_DIRECTORY);
    await close(fd);
    fd = next;
  }
  await close(fd);
}

async function withDirFd<T>(dir: string, fn: (fd: number) => Promise<T>): Promise<T> {
  const fd = await openat2(C.AT_FDCWD, dir, C.O_PATH | C.O_DIRECTORY);
  try {
    return await fn(fd);
  } finally {
    await close(fd);
  }
}

const openFds = async () => (await readdir("/proc/self/fd")).length;

test(`a ${DEPTH}-deep tree is removed, with no fd left open`, async (t) => {
  const dir = await tempDir(t, "strata-rmtree-");
  await deepTree(dir, DEPTH);
  const before = await openFds();
  await withDirFd(dir, (fd) => removeTreeAt(fd, "top"));
  t.deepEqual(await readdir(dir), []);
  t.is(await openFds(), before);
});

test("symlinks are removed, never followed: the top one and those inside", async (t) => {
  const dir = await tempDir(t, "strata-rmtree-");
  const victim = join(dir, "victim");
  await mkdir(join(victim, "sub"), { recursive: true });
  await writeFile(join(victim, "sub", "canary"), "here\n");
  await symlink(victim, join(dir, "link"));
  await mkdir(join(dir, "tree", "d"), { recursive: true });
  await symlink(victim, join(dir, "tree", "d", "to-victim"));
  await symlink(join(victim, "sub"), join(dir, "tree", "to-sub"));
  await withDirFd(dir, async (fd) => {
    await removeTreeAt(fd, "link");
    await removeTreeAt(fd, "tree");
  });
  t.deepEqual((await readdir(dir)).sort(), ["victim"]);
  t.is(await readFile(join(victim, "sub", "canary"), "utf8"), "here\n");
});

test("a mount inside the tree is refused with EXDEV and its filesystem is not touched", async (t) => {
  const dir = await tempDir(t, "strata-rmtree-");
  const mp = join(dir, "tree", "x", "mnt");
  await mkdir(mp, { recursive: true });
  await mount("tmpfs", mp, "tmpfs", 0, "size=1m");
  t.teardown(() => umount2(mp, C.MNT_DETACH).catch(() => undefined));
  await writeFile(join(mp, "kept"), "of the mounted filesystem\n");
  await writeFile(join(dir, "tree", "gone"), "");
  const err = await withDirFd(dir, (fd) => t.throwsAsync(removeTreeAt(fd, "tree")));
  t.is((err as { code?: string }).code, "EXDEV");
  t.is(await readFile(join(mp, "kept"), "utf8"), "of the mounted filesystem\n");
  // Nor is a mount point itself removed when named as the top.
  const top = await withDirFd(join(dir, "tree", "x"), (fd) => t.throwsAsync(removeTreeAt(fd, "mnt")));
  t.is((top as { code?: string }).code, "EXDEV");
  await umount2(mp, C.MNT_DETACH);
  await withDirFd(dir, (fd) => removeTreeAt(fd, "tree"));
  t.deepEqual(await readdir(dir), []);
});

test("a missing entry is not an error; a name with a slash is refused", async (t) => {
  const dir = await tempDir(t, "strata-rmtree-");
  await withDirFd(dir, async (fd) => {
    await removeTreeAt(fd, "nothing-here");
    await t.throwsAsync(removeTreeAt(fd, "../x"), { instanceOf: TypeError });
  });
});
