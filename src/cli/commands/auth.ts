/**
 * `strata login|logout`: registry credentials in Docker's config.json (or
 * its credential helpers), shared with `docker login`. Login checks the
 * credentials against the registry before saving them.
 *
 * @module
 */
import type { Command } from "commander";
import { print, readStdinText } from "../context.js";
import { StrataError } from "../../errors.js";
import { UsageError } from "../errors.js";
import { jsonDocument } from "../output.js";
import { defineVerb } from "../verbs.js";

/** Asks on the terminal; `hidden` does not echo (a password). */
async function prompt(question: string, hidden = false): Promise<string> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) {
    // Echo nothing after the question while the password is typed.
    const write = (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput.bind(rl);
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
      if (s.includes(question)) write(s);
    };
  }
  try {
    return await rl.question(question);
  } finally {
    rl.close();
    if (hidden) process.stderr.write("\n");
  }
}

/** The registry host a login names: "docker.io" when none. */
function registryOf(server: string | undefined): string {
  if (!server) return "docker.io";
  return server.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
}

/** Adds login and logout. */
export function authCommands(program: Command): void {
  defineVerb(program, "login")
    .option("-u, --username <name>", "user name")
    .option("-p, --password <password>", "password (prefer --password-stdin)")
    .option("--password-stdin", "read the password from stdin")
    .option("--insecure", "plain HTTP for this registry")
    .option("--docker-config <file>", "Docker config.json to use (default ~/.docker/config.json)")
    .action(
      async (
        server: string | undefined,
        o: { username?: string; password?: string; passwordStdin?: boolean; insecure?: boolean; dockerConfig?: string },
        cmd: Command,
      ) => {
        if (o.password && o.passwordStdin)
          throw new UsageError("Cannot log in: --password and --password-stdin are exclusive");
        if (o.passwordStdin && !o.username) throw new UsageError("Cannot log in: --password-stdin needs --username");
        const registry = registryOf(server);
        let username = o.username;
        let password = o.passwordStdin ? await readStdinText() : o.password;
        if (!username || !password) {
          if (!process.stdin.isTTY)
            throw new UsageError("Cannot log in: no terminal to ask on, give --username and --password-stdin");
          username ??= await prompt("Username: ");
          password = await prompt("Password: ", true);
        }
        if (!username || !password) throw new UsageError("Cannot log in: user name and password needed");
        const { RegistryClient } = await import("../../image/index.js");
        const client = new RegistryClient(registry, {
          credentials: { username, password },
          attempts: 1,
          ...(o.insecure ? { insecure: true } : {}),
        });
        try {
          const res = await client.request("/v2/", { scopes: [] });
          await res.body.cancel();
        } catch (err) {
          if ((err as { code?: string }).code !== "ERR_REGISTRY_AUTH") throw err;
          throw new StrataError(
            "ERR_REGISTRY_AUTH",
            `Cannot log in: the registry refused the credentials "${registry}"`,
            {
              cause: err,
            },
          );
        }
        const { storeCredentials } = await import("../../credentials/index.js");
        const where = await storeCredentials(registry, { username, password }, o.dockerConfig);
        const json = cmd.optsWithGlobals<{ json?: boolean }>().json;
        if (json) print(jsonDocument({ Status: "Login Succeeded", Store: where }));
        else {
          if (!where.startsWith("docker-credential-"))
            process.stderr.write(`WARNING! Your password will be stored unencrypted in ${where}.\n`);
          print("Login Succeeded");
        }
      },
    );

  defineVerb(program, "logout")
    .option("--docker-config <file>", "Docker config.json to use (default ~/.docker/config.json)")
    .action(async (server: string | undefined, o: { dockerConfig?: string }, cmd: Command) => {
      const registry = registryOf(server);
      const { eraseCredentials } = await import("../../credentials/index.js");
      await eraseCredentials(registry, o.dockerConfig);
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json;
      print(
        json
          ? jsonDocument({ Status: `Removing login credentials for ${registry}` })
          : `Removing login credentials for ${registry}`,
      );
    });
}
