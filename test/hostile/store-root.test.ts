/**
 * Issue 19 item 5: the store root is trusted only when nobody but root can
 * write it (Docker's /var/lib/docker is 0710); an empty --root is no root.
 */
import { chmod, chown, mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { strata } from "../helpers/cli.js";
import { tempDir } from "../helpers/tmp.js";

const COMMANDS = [["images"], ["layer", "ls"], ["ps"], ["check"]];

test("an empty --root is refused in one line, not read as the current directory", async (t) => {
  const cwd = await tempDir(t, "strata-root-cwd-");
  for (const cmd of COMMANDS) {
    const r = await strata(["--root", "", "--driver", "vfs", ...cmd], { cwd });
    t.not(r.code, 0);
    t.regex(r.stderr, /^strata: Cannot open the store: the root is an empty path "" \[ERR_STORE_ROOT\]\n$/);
  }
  t.deepEqual(await readdir(cwd), [], "nothing made in the current directory");
});

for (const [what, prepare, reason] of [
  ["world-writable", (p: string) => chmod(p, 0o777), /writable by group or others \(mode 0777/],
  ["group-writable", (p: string) => chmod(p, 0o770), /writable by group or others \(mode 0770/],
  ["owned by another user", (p: string) => chown(p, 1000, 1000), /owned by uid 1000, not root/],
] as const) {
  test(`a root ${what} is refused with a clear error and left untouched`, async (t) => {
    const dir = await tempDir(t, "strata-root-");
    const root = join(dir, "root");
    await mkdir(root, { mode: 0o700 });
    await prepare(root);
    for (const driver of ["vfs", "overlay"]) {
      for (const cmd of COMMANDS) {
        const r = await strata(["--root", root, "--driver", driver, ...cmd]);
        t.not(r.code, 0, `${driver} ${cmd.join(" ")}`);
        t.regex(r.stderr, reason);
        t.regex(r.stderr, /\[ERR_STORE_ROOT\]\n$/);
      }
    }
    t.deepEqual(await readdir(root), [], "nothing was created in it");
  });
}

test("a new root is created 0710, root-owned, whatever the umask", async (t) => {
  const dir = await tempDir(t, "strata-root-");
  const root = join(dir, "a", "b", "root");
  const r = await strata(["--root", root, "--driver", "vfs", "images"]);
  t.is(r.code, 0, r.stderr);
  const st = await stat(root);
  t.is(st.mode & 0o7777, 0o710);
  t.is(st.uid, 0);
});
