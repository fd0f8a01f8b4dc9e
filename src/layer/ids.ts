/**
 * Layer identities: diffID = sha256 of the uncompressed tar; chainID of the
 * bottom layer = its diffID; chainID(n) = sha256(chainID(n-1) + " " + diffID(n)),
 * with both operands as full "sha256:<hex>" strings. Driver ids (cache ids,
 * mount ids) are 64 random hex characters.
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";

/** A sha256 digest as Docker writes it: `sha256:<64 hex>`. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** The diffID and chainID of an empty tar (1024 zero bytes), as Docker's EmptyLayer. */
export const EMPTY_LAYER_DIGEST: Digest = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/** Whether `s` is a {@link Digest}. */
export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

/** @throws ERR_INVALID_DIGEST */
export function assertDigest(s: string, what = "digest"): Digest {
  if (!isDigest(s))
    throw new InvalidArgumentError("ERR_INVALID_DIGEST", `Cannot use ${what}: not a sha256 digest "${s}"`);
  return s;
}

/** chainID of a layer with `diffID` on a parent chain ("" for none). */
export function chainID(parentChainID: string, diffID: Digest): Digest {
  if (!parentChainID) return diffID;
  return `sha256:${createHash("sha256").update(`${parentChainID} ${diffID}`).digest("hex")}`;
}

/**
 * chainIDs of every layer of an image, bottom first.
 * @throws ERR_INVALID_DIGEST for a diffID that is not a sha256 digest
 */
export function chainIDs(diffIDs: readonly string[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIDs) out.push(chainID(out[out.length - 1] ?? "", assertDigest(d, "a diffID")));
  return out;
}

/** A new random driver id. */
export function randomID(): string {
  return randomBytes(32).toString("hex");
}

/** The hex part of a digest, used for directory names. */
export function hex(d: Digest): string {
  return d.slice(7);
}
