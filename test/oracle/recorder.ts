/**
 * Turns what the oracle's tar reader sees (raw non-content bytes, body
 * sizes; `RawRecorder`) into tar-split index records for a product
 * `TarRecorder`, in the index format of `src/archive/tar-split.ts`: a raw
 * record for each run of non-content bytes, a file record for each body.
 *
 * @module
 */
import type { TarRecorder } from "../../src/archive/tar-split.js";
import type { RawRecorder } from "../helpers/tar-reader.js";

const RAW = 0x01;
const FILE = 0x02;

function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** A {@link RawRecorder} that encodes into `target`; call {@link end} after the archive. */
export class RecordEncoder implements RawRecorder {
  #raw: Buffer[] = [];
  #rawBytes = 0;
  /** What the target asked to wait for (the reader is synchronous; the waits are joined at the end). */
  #waits: Array<Promise<void>> = [];

  constructor(readonly target: TarRecorder) {}

  raw(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#raw.push(Buffer.from(bytes));
    this.#rawBytes += bytes.length;
  }

  file(name: string, size: number): void {
    if (size === 0) return;
    this.#flush();
    const n = Buffer.from(name, "utf8");
    this.#send(Buffer.concat([Buffer.from([FILE]), varint(size), varint(n.length), n]), 1);
  }

  /** Flushes the last run of raw bytes and waits until the target has taken everything. */
  async end(): Promise<void> {
    this.#flush();
    await Promise.all(this.#waits);
  }

  #send(encoded: Buffer, files: number): void {
    const wait = this.target.records(encoded, files);
    if (wait) this.#waits.push(wait);
  }

  #flush(): void {
    if (this.#rawBytes === 0) return;
    this.#send(Buffer.concat([Buffer.from([RAW]), varint(this.#rawBytes), ...this.#raw]), 0);
    this.#raw = [];
    this.#rawBytes = 0;
  }
}
