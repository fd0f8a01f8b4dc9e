/**
 * Docker's transaction protocol around every pool change (create_thin,
 * create_snap, delete), so a crash never leaves a thin device that strata's
 * metadata does not know, or metadata naming a device the pool lacks:
 *
 * 1. open: `open_transaction_id = pool transaction id + 1`, persisted with the
 *    device's hash and id in `transaction-metadata`;
 * 2. the pool message runs and the device's metadata file is written or removed;
 * 3. close: `set_transaction_id OLD NEW` on the pool, then the file is removed.
 *
 * At start, an open transaction newer than the pool's id is rolled back: its
 * device is deleted from the pool and its metadata file removed.
 *
 * @module
 */
import type { MetadataStore, TransactionMeta } from "./metadata.js";
import { isExists, isMissing, type PoolTarget } from "./pool.js";

/** What transactions need of a pool: its status (for the transaction id) and messages. */
export type TransactionPool = Pick<PoolTarget, "status" | "message">;

/** Runs pool changes inside transactions. Callers hold the DeviceSet's global lock. */
export class Transactions {
  readonly #md: MetadataStore;
  readonly #pool: TransactionPool;

  constructor(md: MetadataStore, pool: TransactionPool) {
    this.#md = md;
    this.#pool = pool;
  }

  /** Records the intent to change device `deviceId` of `hash`; returns the open transaction. */
  async open(hash: string, deviceId: number): Promise<TransactionMeta> {
    const current = (await this.#pool.status()).transactionId;
    const tx = { open_transaction_id: current + 1, device_hash: hash, device_id: deviceId };
    await this.#md.saveTransaction(tx);
    return tx;
  }

  /** Moves the pool's transaction id forward and forgets the transaction. */
  async close(tx: TransactionMeta): Promise<void> {
    await this.#pool.message(`set_transaction_id ${tx.open_transaction_id - 1} ${tx.open_transaction_id}`);
    await this.#md.clearTransaction();
  }

  /**
   * Runs `fn` inside a transaction for (`hash`, `deviceId`). When `fn` fails
   * the transaction is rolled back at once (device deleted from the pool,
   * metadata of that id removed) and the error rethrown; when the pool said
   * the id is taken (someone else's device), only the transaction is dropped.
   */
  async run<T>(hash: string, deviceId: number, fn: () => Promise<T>): Promise<T> {
    const tx = await this.open(hash, deviceId);
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      if (isExists(err)) await this.#md.clearTransaction();
      else await this.rollback(tx);
      throw err;
    }
    await this.close(tx);
    return result;
  }

  /** Undoes `tx`: deletes its device from the pool (a missing one is fine) and its metadata. */
  async rollback(tx: TransactionMeta): Promise<void> {
    try {
      await this.#pool.message(`delete ${tx.device_id}`);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    const dev = await this.#md.device(tx.device_hash);
    if (dev && dev.device_id === tx.device_id) await this.#md.removeDevice(tx.device_hash);
    await this.#md.clearTransaction();
  }

  /**
   * At start: rolls back a transaction the pool never closed.
   * @returns what happened, for the log ("none", "rolled back", "stale")
   */
  async recover(): Promise<"none" | "rolled back" | "stale"> {
    const tx = await this.#md.transaction();
    if (!tx) return "none";
    const poolTx = (await this.#pool.status()).transactionId;
    if (tx.open_transaction_id > poolTx) {
      await this.rollback(tx);
      return "rolled back";
    }
    // The pool got set_transaction_id but the file outlived it: the change is complete.
    await this.#md.clearTransaction();
    return "stale";
  }
}
