/**
 * `npm run bench:apply`: strata's archive work as whole commands against
 * GNU tar and find, each run on its own fresh filesystem (see
 * `../side-by-side.ts`), on the corpus of `scripts/make-corpus.sh`.
 *
 * Cases:
 * - `apply debian`, `apply 60k`, `apply large`, each uncompressed and `.gz`:
 *   `strata --root R layer apply FILE` (the automatic driver, or `--driver`)
 *   against `tar -xf FILE` / `tar -xzf FILE` into a plain directory;
 * - `changes 60k`: `strata --driver vfs diff C` of an unchanged container
 *   holding a full copy of the 60k-file layer (vfs's naive diff walks both
 *   trees) against `find A B -printf …` over the layer and a copy of it;
 * - `export 60k`: `strata --driver vfs layer export ID -o FILE` against
 *   `tar -cf FILE -C A .` of the same tree.
 * The trees a case starts from are made untimed on the run's filesystem.
 *
 * @module
 */
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { sh } from "../exec.js";
import type { FreshFs } from "../fresh-fs.js";
import { type BenchCase, commandContender } from "../side-by-side.js";
import { type ProgramOptions, programOptions, runCases, runProgram, strata, wanted } from "./common.js";

const USAGE = `
npm run bench:apply -- [options]

  --quick            the small corpus (scripts/make-corpus.sh --quick) and 2 rounds
  --rounds N         rounds per case (default 3)
  --fs ext4|xfs      filesystem made fresh for every run (default ext4)
  --cases a,b        run the cases whose names start with these
                     ("apply debian", "apply 60k", "apply large", "changes", "export")
  --corpus DIR       corpus directory (default /var/tmp/strata-corpus, or -quick)
  --driver NAME      strata's driver for the apply cases (default: automatic)
`;

const TAR_X = ["--numeric-owner", "--xattrs", "--xattrs-include=*"];
const LAYERS = [
  ["debian", "debian.tar"],
  ["60k", "small.tar"],
  ["large", "large.tar"],
] as const;

function applyCases(corpus: string, o: ProgramOptions, driver: string[]): BenchCase[] {
  const out: BenchCase[] = [];
  for (const [label, file] of LAYERS)
    for (const gz of [false, true]) {
      const name = `apply ${label}${gz ? " .gz" : ""}`;
      if (!wanted(o, name)) continue;
      const path = join(corpus, gz ? `${file}.gz` : file);
      const peer = gz ? "tar -xzf" : "tar -xf";
      out.push({
        name,
        reference: peer,
        contenders: [
          commandContender("strata layer apply", (fs) =>
            strata("--root", join(fs.path, "root"), ...driver, "layer", "apply", path),
          ),
          commandContender(peer, (fs) => ["tar", [...TAR_X, gz ? "-xzf" : "-xf", path, "-C", join(fs.path, "x")]], {
            prepare: (fs) => mkdir(join(fs.path, "x")),
          }),
        ],
      });
    }
  return out;
}

/** The vfs store on `fs` with the 60k-file layer applied; returns its root and the layer's chainID. */
async function vfsLayer(fs: FreshFs, tar: string): Promise<[string, string]> {
  const root = join(fs.path, "root");
  const [cmd, args] = strata("--root", root, "--driver", "vfs", "layer", "apply", tar);
  return [root, (await sh(cmd, args)).trim()];
}

/** The 60k-file tree extracted by GNU tar at `<fs>/A`. */
async function tarTree(fs: FreshFs, tar: string): Promise<string> {
  const a = join(fs.path, "A");
  await mkdir(a);
  await sh("tar", [...TAR_X, "-xf", tar, "-C", a]);
  return a;
}

function walkCases(corpus: string, o: ProgramOptions): BenchCase[] {
  const tar = join(corpus, "small.tar");
  const out: BenchCase[] = [];
  if (wanted(o, "changes 60k")) {
    let root = "";
    out.push({
      name: "changes 60k",
      reference: "find A B",
      contenders: [
        commandContender("strata diff (vfs)", () => strata("--root", root, "--driver", "vfs", "diff", "c"), {
          prepare: async (fs) => {
            let id;
            [root, id] = await vfsLayer(fs, tar);
            const [cmd, args] = strata("--root", root, "--driver", "vfs", "create", "--no-init", "c", id);
            await sh(cmd, args);
          },
        }),
        commandContender(
          "find A B",
          (fs) => ["find", [join(fs.path, "A"), join(fs.path, "B"), "-printf", "%s %T@ %m %U %G\\n"]],
          {
            prepare: async (fs) => {
              await sh("cp", ["-a", await tarTree(fs, tar), join(fs.path, "B")]);
            },
          },
        ),
      ],
    });
  }
  if (wanted(o, "export 60k")) {
    let root = "";
    let id = "";
    out.push({
      name: "export 60k",
      reference: "tar -cf",
      contenders: [
        commandContender(
          "strata layer export (vfs)",
          (fs) => strata("--root", root, "--driver", "vfs", "layer", "export", id, "-o", join(fs.path, "out.tar")),
          {
            prepare: async (fs) => {
              [root, id] = await vfsLayer(fs, tar);
            },
          },
        ),
        commandContender(
          "tar -cf",
          (fs) => ["tar", ["--numeric-owner", "-cf", join(fs.path, "out.tar"), "-C", join(fs.path, "A"), "."]],
          {
            prepare: async (fs) => {
              await tarTree(fs, tar);
            },
          },
        ),
      ],
    });
  }
  return out;
}

async function main(): Promise<void> {
  const o = programOptions(
    USAGE,
    { corpus: { type: "string" }, driver: { type: "string" } },
    { rounds: 3, quickRounds: 2 },
  );
  const corpus =
    (o.extra.corpus as string | undefined) ?? (o.quick ? "/var/tmp/strata-corpus-quick" : "/var/tmp/strata-corpus");
  const sizes: string[] = [];
  for (const [label, f] of LAYERS) {
    const [a, b] = await Promise.all(
      [f, `${f}.gz`].map((x) =>
        stat(join(corpus, x)).then(
          (s) => s.size,
          () => undefined,
        ),
      ),
    );
    if (a === undefined || b === undefined) {
      const make = `bash scripts/make-corpus.sh${o.quick ? " --quick" : ""}`;
      throw new Error(`Cannot run bench:apply: ${join(corpus, f)}(.gz) is missing, run ${make} first`);
    }
    sizes.push(`${label} ${f} ${(a / 1e6).toFixed(0)} MB (.gz ${(b / 1e6).toFixed(0)} MB)`);
  }
  const driver = typeof o.extra.driver === "string" ? ["--driver", o.extra.driver] : [];
  console.log(`# bench:apply — corpus ${corpus}: ${sizes.join(", ")}`);
  await runCases("strata against GNU tar and find", [...applyCases(corpus, o, driver), ...walkCases(corpus, o)], o);
}

runProgram(main);
