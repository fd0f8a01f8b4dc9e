/** The native calls against the real kernel: loop devices, mounts, xattrs, openat2 containment, typed errors. */
import { execFileSync } from "node:child_process";
import { mkdir, open, readFile, stat, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { SystemError } from "../src/errors.js";
import * as n from "../src/native.js";
import { C } from "../src/native.js";
import { tempDir } from "./helpers/tmp.js";

test("attachLoop binds a file to a real loop device and detachLoop frees it", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, "disk.img");
  await writeFile(file, "");
  await truncate(file, 64 << 20);
  const loop = await n.attachLoop(file, { autoclear: false });
  let attached = true;
  t.teardown(async () => {
    if (attached) await n.detachLoop(loop.device).catch(() => {});
  });
  t.regex(loop.device, /^\/dev\/loop\d+$/);
  t.true((await stat(loop.device)).isBlockDevice());
  const st = await n.loopStatus(loop.device);
  t.is(st.backingFile, file);
  t.is(execFileSync("blockdev", ["--getsize64", loop.device]).toString().trim(), String(64 << 20));
  await n.detachLoop(loop.device);
  attached = false;
  // Unbound (ENXIO), or already taken by another process on this shared machine: either way not ours.
  const after = await n.loopStatus(loop.device).catch((err: unknown) => err);
  if (after instanceof SystemError) t.is(after.code, "ENXIO");
  else t.not((after as { backingFile: string }).backingFile, file);
});

test("mount and umount2 a real tmpfs, including MNT_DETACH", async (t) => {
  const dir = await tempDir(t);
  let mounted = false;
  t.teardown(async () => {
    if (mounted) await n.umount2(dir, C.MNT_DETACH).catch(() => {});
  });
  await n.mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700");
  mounted = true;
  t.is((await n.statfs(dir)).type, 0x01021994);
  t.is((await stat(dir)).mode & 0o777, 0o700);
  await writeFile(join(dir, "f"), "x");
  await n.umount2(dir, C.MNT_DETACH);
  mounted = false;
  t.not((await n.statfs(dir)).type, 0x01021994);
  const err = await t.throwsAsync(n.umount2(dir));
  t.is((err as SystemError).code, "EINVAL");
});

test("xattrs are written, listed, read back and removed", async (t) => {
  const dir = await tempDir(t);
  const f = join(dir, "f");
  await writeFile(f, "");
  await n.lsetxattr(f, "user.strata", Buffer.from([0, 1, 2, 255]));
  await n.lsetxattr(f, "trusted.overlay.opaque", Buffer.from("y"));
  t.deepEqual((await n.llistxattr(f)).sort(), ["trusted.overlay.opaque", "user.strata"]);
  t.deepEqual(await n.lgetxattr(f, "user.strata"), Buffer.from([0, 1, 2, 255]));
  await n.lremovexattr(f, "user.strata");
  t.is(await n.lgetxattr(f, "user.strata"), null);
  const err = await t.throwsAsync(n.lsetxattr(f, "user.x", Buffer.from("1"), C.XATTR_REPLACE));
  t.is((err as SystemError).code, "ENODATA");
});

test("utimensat keeps nanoseconds and can set a symlink's own times", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "f"), "");
  await symlink("f", join(dir, "l"));
  await n.utimensat(C.AT_FDCWD, join(dir, "f"), { sec: 1000, nsec: 5 }, { sec: 1_600_000_000, nsec: 123_456_789 });
  const st = await stat(join(dir, "f"), { bigint: true });
  t.is(st.mtimeNs, 1_600_000_000_123_456_789n);
  await n.utimensat(C.AT_FDCWD, join(dir, "l"), { sec: 7, nsec: 0 }, { sec: 8, nsec: 9 }, C.AT_SYMLINK_NOFOLLOW);
  const ls = await n.fstatat(C.AT_FDCWD, join(dir, "l"), C.AT_SYMLINK_NOFOLLOW);
  t.is(ls.mtimeSec, 8);
  t.is(ls.mtimeNsec, 9);
  t.is((await stat(join(dir, "f"), { bigint: true })).mtimeNs, 1_600_000_000_123_456_789n, "target untouched");
});

test("mknod makes device nodes and fifos", async (t) => {
  const dir = await tempDir(t);
  await n.mknod(join(dir, "null"), C.S_IFCHR | 0o666, 1, 3);
  await n.mknod(join(dir, "fifo"), C.S_IFIFO | 0o600);
  const st = await stat(join(dir, "null"));
  t.true(st.isCharacterDevice());
  t.is(st.rdev, (1 << 8) | 3);
  t.true((await stat(join(dir, "fifo"))).isFIFO());
});

test("openat2 with RESOLVE_IN_ROOT keeps symlinks and .. inside the root", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  await mkdir(join(root, "etc"), { recursive: true });
  await writeFile(join(dir, "secret"), "outside");
  await writeFile(join(root, "etc/secret"), "inside");
  await symlink("../../secret", join(root, "up"));
  await symlink("/etc", join(root, "abs"));
  const rfd = await n.openat2(C.AT_FDCWD, root, C.O_PATH | C.O_DIRECTORY);
  try {
    // "../secret" from the root stays at the root: it names root/secret, which does not exist.
    const e1 = await t.throwsAsync(n.openat2(rfd, "../secret", C.O_RDONLY, 0, C.RESOLVE_IN_ROOT));
    t.is((e1 as SystemError).code, "ENOENT");
    const e2 = await t.throwsAsync(n.openat2(rfd, "up", C.O_RDONLY, 0, C.RESOLVE_IN_ROOT));
    t.is((e2 as SystemError).code, "ENOENT");
    // An absolute symlink resolves inside the root.
    const fd = await n.openat2(rfd, "abs/secret", C.O_RDONLY, 0, C.RESOLVE_IN_ROOT);
    const fh = await open(`/proc/self/fd/${fd}`, "r");
    t.is(await fh.readFile("utf8"), "inside");
    await fh.close();
    await n.close(fd);
    // RESOLVE_BENEATH refuses the escape outright.
    const e3 = await t.throwsAsync(n.openat2(rfd, "up", C.O_RDONLY, 0, C.RESOLVE_BENEATH));
    t.is((e3 as SystemError).code, "EXDEV");
    // The *at helpers act relative to the root fd.
    await n.mkdirat(rfd, "newdir", 0o750);
    await n.symlinkat("target", rfd, "newlink");
    t.is(await n.readlinkat(rfd, "newlink"), "target");
    await n.fchownat(rfd, "newlink", 12, 34, C.AT_SYMLINK_NOFOLLOW);
    t.is((await n.fstatat(rfd, "newlink", C.AT_SYMLINK_NOFOLLOW)).uid, 12);
    await n.unlinkat(rfd, "newdir", C.AT_REMOVEDIR);
    t.is(await readFile(join(dir, "secret"), "utf8"), "outside");
  } finally {
    await n.close(rfd);
  }
});

test("flock excludes a second locker until released", async (t) => {
  const dir = await tempDir(t);
  const a = await open(join(dir, "lock"), "w");
  const b = await open(join(dir, "lock"), "r");
  try {
    await n.flock(a.fd, C.LOCK_EX);
    const e = await t.throwsAsync(n.flock(b.fd, C.LOCK_EX | C.LOCK_NB));
    t.is((e as SystemError).code, "EAGAIN");
    await n.flock(a.fd, C.LOCK_UN);
    await t.notThrowsAsync(n.flock(b.fd, C.LOCK_EX | C.LOCK_NB));
  } finally {
    await a.close();
    await b.close();
  }
});

test("statfs reports the filesystem magic", async (t) => {
  const st = await n.statfs("/proc");
  t.is(st.type, 0x9fa0);
  t.true((await n.statfs("/")).blocks > 0);
});

test("bad input gives typed errors with errno, never a crash", async (t) => {
  const calls: Array<[string, () => Promise<unknown>, string]> = [
    ["mount", () => n.mount("none", "/nonexistent/strata", "tmpfs"), "ENOENT"],
    ["umount2", () => n.umount2("/nonexistent/strata"), "ENOENT"],
    ["mknod", () => n.mknod("/nonexistent/strata", C.S_IFIFO | 0o600), "ENOENT"],
    ["lgetxattr", () => n.lgetxattr("/nonexistent/strata", "user.x"), "ENOENT"],
    ["lsetxattr", () => n.lsetxattr("/nonexistent/strata", "user.x", Buffer.from("")), "ENOENT"],
    ["llistxattr", () => n.llistxattr("/nonexistent/strata"), "ENOENT"],
    ["lremovexattr", () => n.lremovexattr("/nonexistent/strata", "user.x"), "ENOENT"],
    [
      "utimensat",
      () => n.utimensat(C.AT_FDCWD, "/nonexistent/strata", { sec: 0, nsec: 0 }, { sec: 0, nsec: 0 }),
      "ENOENT",
    ],
    ["flock", () => n.flock(987654, C.LOCK_EX), "EBADF"],
    ["statfs", () => n.statfs("/nonexistent/strata"), "ENOENT"],
    ["openat2", () => n.openat2(987654, "x", C.O_RDONLY), "EBADF"],
    ["close", () => n.close(987654), "EBADF"],
    ["mkdirat", () => n.mkdirat(C.AT_FDCWD, "/nonexistent/strata/x", 0o755), "ENOENT"],
    ["fstatat", () => n.fstatat(C.AT_FDCWD, "/nonexistent/strata"), "ENOENT"],
    ["readlinkat", () => n.readlinkat(C.AT_FDCWD, "/proc/version"), "EINVAL"],
    ["attachLoop", () => n.attachLoop("/nonexistent/strata"), "ENOENT"],
    ["detachLoop", () => n.detachLoop("/nonexistent/strata"), "ENOENT"],
    ["utimensat nsec", () => n.utimensat(C.AT_FDCWD, "/tmp", { sec: 0, nsec: 2e9 }, { sec: 0, nsec: 0 }), "EINVAL"],
  ];
  for (const [name, fn, code] of calls) {
    const err = await t.throwsAsync(fn(), undefined, name);
    t.true(err instanceof SystemError, `${name} gives a SystemError`);
    t.is((err as SystemError).code, code, name);
    t.true((err as SystemError).errno < 0, `${name} carries the errno`);
  }
  // Wrong argument types are TypeErrors, not crashes.
  await t.throwsAsync(n.mount(null, 42 as unknown as string, null), { instanceOf: TypeError });
  await t.throwsAsync(n.lsetxattr("/tmp", "user.x", "not a buffer" as unknown as Buffer), { instanceOf: TypeError });
  await t.throwsAsync(n.openat2(1.5, "x", 0), { instanceOf: TypeError });
  await t.throwsAsync(n.statfs("a\0b"), { instanceOf: TypeError });
});
