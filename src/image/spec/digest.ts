/**
 * Content digests for images: `sha256:` of bytes, the hex part for file
 * names, and a verifying stream that fails before it ends when the bytes do
 * not match, so no consumer ever sees a clean end of bad data. What a digest
 * is (`isDigest`, `assertDigest`) and the chain rule belong to the layer
 * store (`src/layer/ids.ts`); images use those.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { DigestMismatchError } from "../../errors.js";
import { assertDigest } from "../../layer/index.js";

export { DigestMismatchError };
export { assertDigest, chainIDs, type Digest, isDigest } from "../../layer/index.js";

/**
 * The hex part of a `sha256:` digest (a file name in the stores and layouts).
 * @throws ERR_INVALID_DIGEST when `d` is not a sha256 digest
 */
export function digestHex(d: string): string {
  return assertDigest(d).slice(7);
}

/** sha256 of a buffer as `sha256:<hex>`. */
export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/**
 * A pass-through that hashes and counts what flows through it. With `expect`
 * (digest and/or size) it fails with ERR_DIGEST_MISMATCH instead of ending
 * when the content differs, and as soon as it exceeds the expected size (so
 * an endless source is cut off at the size it promised).
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
