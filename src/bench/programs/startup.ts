/**
 * `npm run bench:startup`: how long a whole `strata` command takes when it
 * has almost nothing to do, against Node's own floor (`node -e 0`), each
 * run on its own fresh filesystem with cold caches (the store lives there).
 *
 * Cases: `help` (`strata --help`), `images` (an empty store), `mount`
 * (`strata mount` of a container made untimed), `create` (`strata create`
 * of a container on a one-layer image made untimed).
 *
 * @module
 */
import { join } from "node:path";
import { sh } from "../exec.js";
import type { FreshFs } from "../fresh-fs.js";
import { type BenchCase, commandContender } from "../side-by-side.js";
import { programOptions, runCases, runProgram, STRATA_CLI, strata, wanted } from "./common.js";

const USAGE = `
npm run bench:startup -- [options]

  --quick            2 rounds
  --rounds N         rounds per case (default 5)
  --fs ext4|xfs      filesystem made fresh for every run (default ext4)
  --cases a,b        run the cases whose names start with these (help, images, mount, create)
  --driver NAME      strata's driver (default: automatic)
`;

/** A store on `fs` holding one small layer (strata's own CLI file as its only file); returns its chainID. */
async function storeWithLayer(fs: FreshFs, driver: string[]): Promise<string> {
  const tar = join(fs.path, "layer.tar");
  await sh("tar", ["--numeric-owner", "-cf", tar, "-C", join(STRATA_CLI, ".."), "main.js"]);
  const [cmd, args] = strata("--root", join(fs.path, "root"), ...driver, "layer", "apply", tar);
  return (await sh(cmd, args)).trim();
}

async function main(): Promise<void> {
  const o = programOptions(USAGE, { driver: { type: "string" } }, { rounds: 5, quickRounds: 2 });
  const driver = typeof o.extra.driver === "string" ? ["--driver", o.extra.driver] : [];
  const floor = () => commandContender("node -e 0", () => [process.execPath, ["-e", "0"]]);
  const root = (fs: FreshFs) => ["--root", join(fs.path, "root"), ...driver];
  let layer = "";
  const cases: BenchCase[] = [
    {
      name: "help",
      reference: "node -e 0",
      contenders: [commandContender("strata --help", () => strata("--help")), floor()],
    },
    {
      name: "images",
      reference: "node -e 0",
      contenders: [commandContender("strata images", (fs) => strata(...root(fs), "images")), floor()],
    },
    {
      name: "mount",
      reference: "node -e 0",
      contenders: [
        commandContender("strata mount", (fs) => strata(...root(fs), "mount", "c"), {
          prepare: async (fs) => {
            const id = await storeWithLayer(fs, driver);
            const [cmd, args] = strata(...root(fs), "create", "c", id);
            await sh(cmd, args);
          },
          finish: async (fs) => {
            const [cmd, args] = strata(...root(fs), "rm", "-f", "c");
            await sh(cmd, args);
          },
        }),
        floor(),
      ],
    },
    {
      name: "create",
      reference: "node -e 0",
      contenders: [
        commandContender("strata create", (fs) => strata(...root(fs), "create", "c", layer), {
          prepare: async (fs) => {
            layer = await storeWithLayer(fs, driver);
          },
        }),
        floor(),
      ],
    },
  ];
  console.log("# bench:startup — whole strata commands against node -e 0");
  await runCases(
    "start-up of whole commands",
    cases.filter((c) => wanted(o, c.name)),
    o,
  );
}

runProgram(main);
