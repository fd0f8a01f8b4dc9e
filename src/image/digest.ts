/**
 * Content digests: parsing, chain IDs and a verifying stream that fails
 * before it ends when the bytes do not match, so no consumer ever sees a
 * clean end of bad data.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { DigestMismatchError, InvalidArgumentError } from "../errors.js";

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export { DigestMismatchError };

/** Throws ERR_INVALID_DIGEST unless `d` is `sha256:` and 64 lowercase hex digits. */
export function assertDigest(d: unknown, what = "digest"): asserts d is string {
  if (typeof d !== "string" || !DIGEST_RE.test(d)) {
    throw new InvalidArgumentError("ERR_INVALID_DIGEST", `Cannot use ${what}: invalid digest "${String(d)}"`);
  }
}

/** The hex part of a `sha256:` digest. */
export function digestHex(d: string): string {
  assertDigest(d);
  return d.slice(7);
}

/** sha256 of a buffer as `sha256:<hex>`. */
export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** The chain rule lives with the layer store; images use the same one. */
export { chainIDs } from "../layer/ids.js";

/**
 * A pass-through that hashes and counts what flows through it. With `expect`
 * (digest and/or size) it fails with ERR_DIGEST_MISMATCH instead of ending
 * when the content differs, and with ERR_BLOB_TOO_LARGE as soon as it
 * exceeds the expected size.
 */
export class DigestStream extends Transform {
  #hash: Hash = createHash("sha256");
  #what: string;
  #expect: { digest?: string; size?: number };
  /** Bytes seen so far. */
  bytes = 0;
  /** The digest once the stream has ended. */
  digest = "";

  constructor(what: string, expect: { digest?: string; size?: number } = {}) {
    super({ highWaterMark: 1 << 20 });
    this.#what = what;
    this.#expect = expect;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.#expect.size !== undefined && this.#expect.size >= 0 && this.bytes > this.#expect.size) {
      cb(new DigestMismatchError(`Cannot verify ${this.#what}: more than ${this.#expect.size} bytes`));
      return;
    }
    this.#hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.digest = `sha256:${this.#hash.digest("hex")}`;
    if (this.#expect.digest && this.digest !== this.#expect.digest) {
      cb(DigestMismatchError.of(this.#what, this.#expect.digest, this.digest));
      return;
    }
    if (this.#expect.size !== undefined && this.#expect.size >= 0 && this.bytes !== this.#expect.size) {
      cb(
        new DigestMismatchError(
          `Cannot verify ${this.#what}: size mismatch, want ${this.#expect.size} got ${this.bytes}`,
        ),
      );
      return;
    }
    cb();
  }
}
