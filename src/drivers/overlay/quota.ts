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
import { promisify } from "node:util";
import { StrataError } from "../../errors.js";
import { mountOf } from "../../util/mountinfo.js";
import type { StoreDir } from "../../util/store-dir.js";

const run = promisify(execFile);
/** First project id strata hands out (well above ids admins usually pick by hand). */
const FIRST_PROJECT_ID = 100_000;

/** Allocates project ids and applies limits for one driver home. */
export class ProjectQuota {
  readonly #home: () => Promise<StoreDir>;
  #next: Promise<void> = Promise.resolve();

  /** @param home the driver home, opened by fd (the counter is read and written there, never through a symlink) */
  constructor(home: () => Promise<StoreDir>) {
    this.#home = home;
  }

  async #allocate(): Promise<number> {
    const home = await this.#home();
    const id = Number((await home.readOptional("quota-next-id"))?.trim()) || FIRST_PROJECT_ID;
    await home.writeAtomic("quota-next-id", String(id + 1), { mode: 0o644 });
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
