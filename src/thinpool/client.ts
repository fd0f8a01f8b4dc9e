/**
 * The control-socket client: one request line, one answer line
 * (`ok[ payload]` or `err ERRNO message`) per connection.
 *
 * @module
 */
import { createConnection } from "node:net";
import { PoolError, poolErrorFromErrno } from "./errors.js";

/** Sends `line` to the daemon at `socketPath` and resolves with the answer's payload ("" when none). */
export function request(socketPath: string, line: string, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = "";
    let done = false;
    const finish = (err: Error | null, payload = "") => {
      if (done) return;
      done = true;
      sock.destroy();
      if (err) reject(err);
      else resolve(payload);
    };
    sock.setTimeout(timeoutMs, () =>
      finish(new PoolError("ERR_POOL_DAEMON", `Cannot ${line}: the pool daemon did not answer in ${timeoutMs} ms`)),
    );
    sock.on("connect", () => sock.write(`${line}\n`));
    sock.on("data", (chunk) => {
      buf += chunk.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const answer = buf.slice(0, nl);
      if (answer === "ok") return finish(null);
      if (answer.startsWith("ok ")) return finish(null, answer.slice(3));
      const m = /^err (\S+) (.*)$/.exec(answer);
      finish(
        m
          ? poolErrorFromErrno(m[1], m[2], line)
          : new PoolError("ERR_POOL_DAEMON", `Cannot ${line}: bad answer "${answer}"`),
      );
    });
    sock.on("error", (err) => finish(err));
    sock.on("close", () =>
      finish(new PoolError("ERR_POOL_DAEMON", `Cannot ${line}: the pool daemon closed the connection`)),
    );
  });
}
