/**
 * Preparing a unix socket path to listen on: the directory is made, a
 * socket left by a daemon that died is removed, and a socket another live
 * daemon answers on is refused (two daemons on one socket would each think
 * they own the store's mounts).
 *
 * @module
 */
import { mkdir, rm, lstat } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";
import { FailedPreconditionError, hasCode, InvalidArgumentError } from "../errors.js";

/** Whether something accepts connections on the unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Makes `path` ready for `listen`.
 * @throws ERR_SOCKET_IN_USE when another process listens there; ERR_INVALID_OPTION
 *   when the path exists and is not a socket, or is not absolute
 */
export async function prepareSocketPath(path: string): Promise<void> {
  if (!path.startsWith("/")) {
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot listen: socket path must be absolute "${path}"`);
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot listen: exists and is not a socket "${path}"`);
  }
  if (await answers(path)) {
    throw new FailedPreconditionError("ERR_SOCKET_IN_USE", `Cannot listen: another process serves "${path}"`);
  }
  await rm(path, { force: true });
}
