/**
 * Per-layer size limits with xfs project quotas (Docker's overlay2 `size`):
 * each read-write layer's directory gets its own project id with a hard
 * block limit, set through `xfs_quota` (xfsprogs). Only xfs mounted with
 * `prjquota` supports this; everywhere else `size` is refused.
 *
 * Project ids come from a counter file in the driver home, so ids are not
 * reused while the home lives.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { hasCode, StrataError } from "../../errors.js";
import { mountOf } from "../../util/mountinfo.js";

const run = promisify(execFile);
/** First project id strata hands out (well above ids admins usually pick by hand). */
const FIRST_PROJECT_ID = 100_000;

/** Allocates project ids and applies limits for one driver home. */
export class ProjectQuota {
  #home: string;
  #next: Promise<void> = Promise.resolve();

  constructor(home: string) {
    this.#home = home;
  }

  async #allocate(): Promise<number> {
    const file = join(this.#home, "quota-next-id");
    let id = FIRST_PROJECT_ID;
    try {
      id = Number((await readFile(file, "utf8")).trim()) || FIRST_PROJECT_ID;
    } catch (err) {
      if (!hasCode(err, "ENOENT")) throw err;
    }
    await writeFile(`${file}.tmp`, String(id + 1));
    await rename(`${file}.tmp`, file);
    return id;
  }

  /**
   * Gives `dir` (and everything later created below it) a new project id
   * limited to `bytes`.
   * @throws ERR_QUOTA when xfs_quota fails
   */
  async limit(dir: string, bytes: number): Promise<number> {
    const prev = this.#next;
    let done!: () => void;
    this.#next = new Promise((r) => (done = r));
    await prev;
    let id: number;
    try {
      id = await this.#allocate();
    } finally {
      done();
    }
    const mnt = (await mountOf(dir)).mountPoint;
    try {
      await run("xfs_quota", ["-x", "-c", `project -s -p ${dir} ${id}`, "-c", `limit -p bhard=${bytes} ${id}`, mnt]);
    } catch (err) {
      throw new StrataError("ERR_QUOTA", `Cannot set the layer size limit: ${(err as Error).message.trim()} "${dir}"`, {
        cause: err,
      });
    }
    return id;
  }
}
