/**
 * The command loads only what the verb needs: `--help`, `--version` and
 * usage errors load no driver, layer, image or bench code; `create` and
 * `mount` load no registry client or archive format. Checked by recording
 * every module the ESM loader loads (a module.register hook).
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { CLI, strata } from "../helpers/cli.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

const run = promisify(execFile);

/** The strata modules (paths under dist/src) one run of the command loads. */
async function modulesLoaded(dir: string, args: string[]): Promise<string[]> {
  const hooks = join(dir, "hooks.mjs");
  await writeFile(
    hooks,
    `import { writeSync } from "node:fs";
export async function load(url, context, next) {
  if (url.includes("/dist/src/")) writeSync(2, "LOADED " + url.split("/dist/src/")[1] + "\\n");
  else if (url.includes("/node_modules/commander/")) writeSync(2, "LOADED commander\\n");
  return next(url, context);
}`,
  );
  const register = join(dir, "register.mjs");
  await writeFile(
    register,
    `import { register } from "node:module"; register(${JSON.stringify(pathToFileURL(hooks).href)});`,
  );
  const r = await run(process.execPath, ["--import", pathToFileURL(register).href, CLI, ...args]).catch(
    (err: { stderr: string }) => err,
  );
  return [...r.stderr.matchAll(/^LOADED (.*)$/gm)].map((m) => m[1]!);
}

const LIBRARY = /^(drivers|layer|image|diff|archive|graphdriver|store|thinpool|credentials)\/|^native\.js$|^bench\//;

test("--help, --version and a usage error load no library code", async (t) => {
  const dir = await tempDir(t, "strata-startup-");
  for (const args of [[], ["--help"], ["--version"], ["--root", "/x", "-h"]])
    t.deepEqual(await modulesLoaded(dir, args), ["cli/main.js", "cli/verbs.js"], `${args.join(" ")}: the table alone`);
  for (const args of [["--help"], ["--version"], ["images", "--help"], ["images", "--bad-flag"]]) {
    const mods = await modulesLoaded(dir, args);
    t.true(mods.includes("cli/main.js"), `${args.join(" ")}: the hook saw the command`);
    t.deepEqual(
      mods.filter((m) => LIBRARY.test(m)),
      [],
      args.join(" "),
    );
  }
});

test("create and mount load no registry client, archive format or import pipeline", async (t) => {
  const dir = await tempDir(t, "strata-startup-");
  const g = ["--root", join(dir, "root"), "--driver", "vfs"];
  await writeFile(join(dir, "l.tar"), await makeTar([{ name: "a", content: "a" }]));
  t.is((await strata([...g, "import", join(dir, "l.tar"), "img:1"])).code, 0);
  for (const args of [["create", "c", "img:1"], ["mount", "c"], ["images"], ["ps"]]) {
    const mods = await modulesLoaded(dir, [...g, ...args]);
    t.true(mods.includes("store/index.js"), args.join(" "));
    const heavy = mods.filter((m) =>
      /^image\/(registry|docker-archive|oci-layout|pipeline|load|index)|^bench\//.test(m),
    );
    t.deepEqual(heavy, [], args.join(" "));
    const groups = mods.filter((m) => m.startsWith("cli/commands/"));
    t.is(groups.length, 1, `${args.join(" ")} loads one group of verbs: ${groups.join(", ")}`);
  }
});
