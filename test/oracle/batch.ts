/**
 * The batch format between the oracle engine (JavaScript: parsing,
 * decisions; `apply.ts`) and the test addon's BatchApplier
 * (`test/native/batch_apply.cc` over the product's `native/apply/apply_fs.h`:
 * the filesystem work). One batch
 * is a little-endian op list plus the body Buffers the ops refer to, in
 * order; bodies are passed by reference, never copied.
 *
 * Op record: u32 op, kind, mode, uid, gid, major, minor, handle, nbufs;
 * (f64 sec, u32 nsec) for atime then mtime; strings (u32 length + UTF-8)
 * name, parent, base, link1, link2; u32 count + (key, value) xattrs; u32
 * count + keep paths.
 *
 * @module
 */
import type { Timespec } from "../../src/native.js";

/** Op codes (native/apply/apply_fs.h ApplyOp). */
export const OP = Object.freeze({
  ENTRY: 1,
  BEGIN: 2,
  WRITE: 3,
  END: 4,
  WHITEOUT_AUFS: 5,
  WHITEOUT_OVERLAY: 6,
  OPAQUE_OVERLAY: 7,
  OPAQUE_AUFS: 8,
  DIR_TIME: 9,
  /** Flag: the op is independent of every other flagged op (native/apply/apply_pool.h). */
  PARALLEL: 0x100,
});

/** Entry kinds (native/apply/apply_fs.h ApplyKind). */
export const KIND = Object.freeze({
  dir: 1,
  file: 2,
  symlink: 3,
  link: 4,
  char: 5,
  block: 6,
  fifo: 7,
  root: 8,
  /** A name made from an AUFS `.wh..wh.plnk` body: link1 = its key, link2 = the stashed copy. */
  plnk: 9,
});

/** The fields of one op; absent numbers are 0, absent strings "". */
export interface OpFields {
  op: number;
  kind?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  major?: number;
  minor?: number;
  handle?: number;
  atime?: Timespec;
  mtime?: Timespec;
  /** The entry's name in the archive, for error and warning messages. */
  name: string;
  parent?: string;
  base?: string;
  link1?: string;
  link2?: string;
  xattrs?: Map<string, Buffer>;
  keep?: string[];
  bodies?: Buffer[];
}

const ZERO: Timespec = { sec: 0, nsec: 0 };

/** Accumulates ops until {@link Batch.take}. */
export class Batch {
  #buf = Buffer.allocUnsafe(256 << 10);
  #len = 0;
  #bodies: Buffer[] = [];
  /** Ops in the batch. */
  ops = 0;
  /** Body bytes the batch refers to. */
  bodyBytes = 0;

  get metaBytes(): number {
    return this.#len;
  }

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  #u32(v: number): void {
    this.#buf.writeUInt32LE(v >>> 0, this.#len);
    this.#len += 4;
  }

  #time(t: Timespec): void {
    this.#buf.writeDoubleLE(t.sec, this.#len);
    this.#buf.writeUInt32LE(t.nsec >>> 0, this.#len + 8);
    this.#len += 12;
  }

  #str(s: string): void {
    this.#ensure(4 + s.length * 3);
    const n = this.#buf.write(s, this.#len + 4, "utf8");
    this.#buf.writeUInt32LE(n, this.#len);
    this.#len += 4 + n;
  }

  #bytes(b: Buffer): void {
    this.#ensure(4 + b.length);
    this.#buf.writeUInt32LE(b.length, this.#len);
    b.copy(this.#buf, this.#len + 4);
    this.#len += 4 + b.length;
  }

  /** Appends one op. */
  add(f: OpFields): void {
    this.#ensure(9 * 4 + 24);
    const bodies = f.bodies ?? [];
    this.#u32(f.op);
    this.#u32(f.kind ?? 0);
    this.#u32(f.mode ?? 0);
    this.#u32(f.uid ?? 0);
    this.#u32(f.gid ?? 0);
    this.#u32(f.major ?? 0);
    this.#u32(f.minor ?? 0);
    this.#u32(f.handle ?? 0);
    this.#u32(bodies.length);
    this.#time(f.atime ?? ZERO);
    this.#time(f.mtime ?? ZERO);
    this.#str(f.name);
    this.#str(f.parent ?? "");
    this.#str(f.base ?? "");
    this.#str(f.link1 ?? "");
    this.#str(f.link2 ?? "");
    this.#ensure(4);
    this.#u32(f.xattrs?.size ?? 0);
    for (const [k, v] of f.xattrs ?? []) {
      this.#str(k);
      this.#bytes(v);
    }
    this.#ensure(4);
    this.#u32(f.keep?.length ?? 0);
    for (const k of f.keep ?? []) this.#str(k);
    for (const b of bodies) {
      this.#bodies.push(b);
      this.bodyBytes += b.length;
    }
    this.ops++;
  }

  /** Returns the encoded ops and their bodies, and empties the batch. */
  take(): { meta: Buffer; bodies: Buffer[]; bytes: number } {
    const out = { meta: Buffer.from(this.#buf.subarray(0, this.#len)), bodies: this.#bodies, bytes: this.bodyBytes };
    this.#len = 0;
    this.#bodies = [];
    this.ops = 0;
    this.bodyBytes = 0;
    return out;
  }
}
