/**
 * Where a command's bytes come from and go to, as the docker CLI does it:
 * a file named by the user or stdin ("-", or no file at all), a file named
 * with `-o` or stdout. Files are checked before any work starts (a missing
 * input, a directory where a file is expected, a terminal as stdout), and
 * an output file appears whole or not at all.
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";

/** An input stream and its size when known. */
export interface Input {
  stream: Readable;
  size?: number;
  /** What the user named ("-" for stdin). */
  name: string;
}

/**
 * Opens `file` for reading, or stdin for "-" / undefined.
 * @param operation for messages: "apply the layer" → `Cannot apply the layer: ...`
 * @throws ERR_FILE_NOT_FOUND; ERR_INVALID_ARGUMENT for a directory or a terminal as stdin
 */
export async function openInput(file: string | undefined, operation: string): Promise<Input> {
  if (file === undefined || file === "-") {
    if (process.stdin.isTTY)
      throw new InvalidArgumentError(
        "ERR_INVALID_ARGUMENT",
        `Cannot ${operation}: stdin is a terminal, give a file or redirect "-"`,
      );
    const st = await stat("/dev/stdin").catch(() => undefined);
    return { stream: process.stdin, name: "-", ...(st?.isFile() ? { size: st.size } : {}) };
  }
  let fh;
  try {
    fh = await open(file, "r");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT")
      throw new NotFoundError("ERR_FILE_NOT_FOUND", `Cannot ${operation}: no such file "${file}"`);
    throw err;
  }
  const st = await fh.stat();
  if (st.isDirectory()) {
    await fh.close();
    throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot ${operation}: is a directory, not a file "${file}"`);
  }
  return {
    stream: fh.createReadStream({ highWaterMark: 1 << 20 }),
    name: file,
    ...(st.isFile() ? { size: st.size } : {}),
  };
}

/** Where a command's output goes. */
export interface Output {
  /** Copies `data` there; a file is complete (renamed into place) when this resolves. */
  write(data: Readable): Promise<void>;
  /** The file path, or undefined for stdout. */
  path?: string;
}

/**
 * The output for `-o FILE`, or stdout when no file is given.
 * @throws ERR_TERMINAL_OUTPUT when stdout is a terminal (as `docker save` refuses);
 *   ERR_INVALID_ARGUMENT when FILE is a directory or its directory does not exist
 */
export async function outputStream(file: string | undefined, operation: string): Promise<Output> {
  if (file === undefined || file === "-") {
    if (process.stdout.isTTY)
      throw new FailedPreconditionError(
        "ERR_TERMINAL_OUTPUT",
        `Cannot ${operation}: refusing to write binary data to a terminal, use -o FILE or redirect stdout`,
      );
    return { write: (data) => pipeline(data, process.stdout, { end: false }) };
  }
  await checkOutputPath(file, operation);
  return {
    path: file,
    async write(data) {
      const tmp = join(dirname(file), `.${basename(file)}.strata-${process.pid}`);
      try {
        await pipeline(data, createWriteStream(tmp));
        await rename(tmp, file);
      } finally {
        await rm(tmp, { force: true });
      }
    },
  };
}

/**
 * Checks that a file can be written at `file`: not a directory, in an existing directory.
 * @throws ERR_INVALID_ARGUMENT
 */
export async function checkOutputPath(file: string, operation: string): Promise<void> {
  const st = await stat(file).catch(() => undefined);
  if (st?.isDirectory())
    throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot ${operation}: is a directory, not a file "${file}"`);
  const dir = await stat(dirname(file)).catch(() => undefined);
  if (!dir?.isDirectory())
    throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot ${operation}: no such directory "${dirname(file)}"`);
}
