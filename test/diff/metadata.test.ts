/**
 * Owner and mode come out exactly as the headers say, whatever the new
 * inode started with. The applier skips fchown/fchmod when a new entry
 * already has the header's owner and mode (it creates files with their
 * final permission bits), so these cases make the starting state differ:
 * a setgid parent whose group new entries inherit, a process umask that
 * strips bits from the creation mode, special bits (setuid, setgid,
 * sticky) that creation does not set, owners other than the applier's,
 * and a hardlink whose file capability a chown would clear. GNU tar
 * (`-p --same-owner`) extracting the same tar is the reference, and the
 * expected values are also checked one by one.
 */
import { lstat, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { applyLayer } from "../../src/diff/apply.js";
import { lgetxattr } from "../../src/native.js";
import { gnuTar } from "../helpers/peer.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { manifest } from "../helpers/tree.js";

// A v2 file capability (cap_net_bind_service, effective), as Docker layers carry them.
const CAP = Buffer.from("0100000200040000000000000000000000000000", "hex");

const SPECS: Spec[] = [
  { name: "g/", mode: 0o2775, uid: 0, gid: 1234 }, // entries made below inherit gid 1234
  { name: "g/root-file", content: "r", mode: 0o644, uid: 0, gid: 0 },
  { name: "g/group-file", content: "g", mode: 0o640, uid: 0, gid: 1234 },
  { name: "g/root-dir/", mode: 0o755, uid: 0, gid: 0 },
  { name: "g/plain-dir/", mode: 0o750, uid: 0, gid: 1234 },
  { name: "g/sym", type: "symlink", linkname: "root-file", uid: 0, gid: 0 },
  { name: "g/fifo", type: "fifo", mode: 0o600, uid: 0, gid: 0 },
  { name: "open", content: "o", mode: 0o777 },
  { name: "world", content: "w", mode: 0o666 },
  { name: "none", content: "n", mode: 0 },
  { name: "suid", content: "s", mode: 0o4755 },
  { name: "sgid", content: "s", mode: 0o2755, gid: 50 },
  { name: "user", content: "u", mode: 0o600, uid: 1000, gid: 1000 },
  { name: "sticky/", mode: 0o1777 },
  { name: "user-dir/", mode: 0o700, uid: 1000, gid: 1000 },
  { name: "user-sym", type: "symlink", linkname: "user", uid: 1000, gid: 1000 },
  { name: "big", content: Buffer.alloc((1 << 20) + 5, 1), mode: 0o4711, uid: 7, gid: 8 }, // streamed body
  { name: "cap", content: "c", mode: 0o755, xattrs: { "security.capability": CAP } },
  { name: "cap-link", type: "link", linkname: "cap", mode: 0o755 }, // Docker chmods a hardlink to its header mode
  { name: "g/dev", type: "char", mode: 0o620, devmajor: 1, devminor: 3 },
];

async function applied(t: Parameters<typeof tempDir>[0], tar: Buffer, threads: number): Promise<string> {
  const dir = join(await tempDir(t), `strata-${threads}`);
  await mkdir(dir);
  await applyLayer(dir, chunks(tar, 3000), { threads });
  return dir;
}

for (const umask of [0o022, 0o077]) {
  test.serial(
    `owner and mode are the headers' with umask ${umask.toString(8)}, on one thread and in parallel`,
    async (t) => {
      const tar = await makeTar(SPECS);
      const base = await tempDir(t);
      await writeFile(join(base, "layer.tar"), tar);
      const old = process.umask(umask);
      try {
        const ref = join(base, "gnu");
        await mkdir(ref);
        const x = ["-p", "--same-owner", "--numeric-owner", "--xattrs", "--xattrs-include=*"];
        await gnuTar([...x, "-xf", join(base, "layer.tar"), "-C", ref]);
        const want = await manifest(ref, { xattrs: "capability" });
        for (const threads of [1, 4]) {
          const dir = await applied(t, tar, threads);
          t.deepEqual(await manifest(dir, { xattrs: "capability" }), want, `threads=${threads}`);
          const st = async (name: string) => {
            const s = await lstat(join(dir, name));
            return `${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`;
          };
          t.is(await st("g/root-file"), "644 0:0");
          t.is(await st("g/root-dir"), "755 0:0");
          t.is(await st("g/plain-dir"), "750 0:1234");
          t.is((await lstat(join(dir, "g/sym"))).gid, 0);
          t.is(await st("open"), "777 0:0");
          t.is(await st("none"), "0 0:0");
          t.is(await st("suid"), "4755 0:0");
          t.is(await st("sgid"), "2755 0:50");
          t.is(await st("sticky"), "1777 0:0");
          t.is(await st("big"), "4711 7:8");
          t.is(await st("g/dev"), "620 0:0");
          t.deepEqual(await lgetxattr(join(dir, "cap-link"), "security.capability"), CAP);
        }
      } finally {
        process.umask(old);
      }
    },
  );
}
