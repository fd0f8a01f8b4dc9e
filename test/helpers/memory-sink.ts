/** A Writable that keeps what it is given, for a TarSplitRecorder in tests. */
import { Writable } from "node:stream";
import { TarSplitRecorder } from "../../src/archive/tar-split.js";

/** A sink and, once it has finished, its bytes. */
export function memorySink(): { sink: Writable; bytes(): Buffer } {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  return { sink, bytes: () => Buffer.concat(parts) };
}

/** A recorder into memory: `index()` finishes it and returns the gzip'd index. */
export function memoryRecorder(): { recorder: TarSplitRecorder; index(): Promise<Buffer> } {
  const { sink, bytes } = memorySink();
  const recorder = new TarSplitRecorder(sink);
  return {
    recorder,
    async index() {
      await recorder.finish();
      return bytes();
    },
  };
}
