/** `strata demo` (the README's first command): a real image, every step timed, nothing left behind. */
import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import test from "ava";
import { strata } from "../helpers/cli.js";

test("demo loads a real busybox image and runs its shell in a container, timing every step", async (t) => {
  const before = (await readdir(tmpdir())).filter((n) => n.startsWith("strata-demo-"));
  const r = await strata(["demo", "--drivers", "vfs"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^strata demo: an image of busybox \(\/bin\/busybox\), \d+(\.\d+)?MB as a docker-archive/);
  for (const step of ["load", "create", "mount", "change", "diff", "commit", "save", "unmount", "rm"])
    t.regex(r.stdout, new RegExp(`^  ${step} +\\d+\\.\\d ms`, "m"), step);
  // uname ran inside the container: the image's own shell and tools did the change.
  for (const change of ["C /etc/motd", "A /etc/app.json", "A /srv/app/built-on", "D /var/log/boot.log"])
    t.regex(r.stdout, new RegExp(`^ +${change.replace(/[/.]/g, "\\$&")}$`, "m"), change);
  t.regex(r.stdout, /^driver +load +create +mount/m);
  t.regex(r.stdout, /^vfs +\d/m);
  const after = (await readdir(tmpdir())).filter((n) => n.startsWith("strata-demo-"));
  t.deepEqual(after.sort(), before.sort(), "the demo's temporary store is gone");
});
