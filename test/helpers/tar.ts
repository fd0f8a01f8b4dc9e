/** Builds small layer tars in memory for tests. */
import type { TarHeader } from "../../src/archive/tar-header.js";
import { tarStream } from "../../src/archive/tar-writer.js";

export interface Spec {
  name: string;
  type?: TarHeader["type"];
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  content?: string | Buffer;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string | Buffer>;
}

export function header(s: Spec): TarHeader {
  const body = s.content === undefined ? Buffer.alloc(0) : Buffer.from(s.content);
  const type = s.type ?? (s.name.endsWith("/") ? "dir" : "file");
  return {
    name: s.name,
    type,
    mode: s.mode ?? (type === "dir" ? 0o755 : 0o644),
    uid: s.uid ?? 0,
    gid: s.gid ?? 0,
    uname: "",
    gname: "",
    size: type === "file" ? body.length : 0,
    mtime: { sec: s.mtime ?? 1_600_000_000, nsec: 0 },
    linkname: s.linkname ?? "",
    devmajor: s.devmajor ?? 0,
    devminor: s.devminor ?? 0,
    xattrs: new Map(Object.entries(s.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v)])),
  };
}

/** A complete tar archive of the given entries. */
export async function makeTar(specs: Spec[]): Promise<Buffer> {
  async function* entries() {
    for (const s of specs) {
      const h = header(s);
      yield { header: h, body: s.content === undefined ? undefined : Buffer.from(s.content) };
    }
  }
  const parts: Buffer[] = [];
  for await (const c of tarStream(entries())) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export async function* chunks(buf: Buffer, size = 4096): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}
