/**
 * Registry credentials where Docker keeps them: `config.json` in
 * `$DOCKER_CONFIG` (default `~/.docker`), read and written as the docker CLI
 * does, so `docker login` and `strata login` share one file:
 *
 * - `credHelpers: { "<registry>": "<name>" }` sends that registry to the
 *   helper program `docker-credential-<name>`;
 * - else `credsStore: "<name>"` sends every registry to one helper;
 * - else `auths: { "<registry>": { "auth": base64("user:password") } }`
 *   holds the credentials in the file itself.
 *
 * A helper speaks Docker's credential-helper protocol: `get` (server URL on
 * stdin → `{"Username","Secret"}`), `store` (`{"ServerURL","Username",
 * "Secret"}` on stdin), `erase` (server URL on stdin). Docker Hub's key is
 * "https://index.docker.io/v1/"; other registries are keyed by host[:port].
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { hasCode, NotFoundError, StrataError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";

/** A user name and password; an identity token is the password with user "<token>". */
export interface Credentials {
  username: string;
  password: string;
}

/** The key Docker Hub's credentials are stored under. */
export const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

/** The part of Docker's config.json strata reads and writes; everything else is kept as it is. */
interface ConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

/** The config.json path: `file`, else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(file?: string): string {
  return file ?? join(process.env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json");
}

/** The config key for a registry host: Docker Hub's URL for "docker.io", else the host[:port]. */
export function serverKey(registry: string): string {
  return ["docker.io", "index.docker.io", "registry-1.docker.io"].includes(registry) ? DOCKER_HUB_KEY : registry;
}

/** "https://host:5000/v2/" or "host:5000" → "host:5000", for matching entries written either way. */
function hostOf(key: string): string {
  return key.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
}

async function readConfig(path: string): Promise<ConfigFile> {
  try {
    const v = JSON.parse(await readFile(path, "utf8")) as unknown;
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new SyntaxError("not a JSON object");
    return v as ConfigFile;
  } catch (err) {
    if (hasCode(err, "ENOENT")) return {};
    throw new StrataError("ERR_DOCKER_CONFIG", `Cannot read the Docker config: ${(err as Error).message} "${path}"`);
  }
}

/** Runs `docker-credential-<helper> <action>` with `input` on stdin. */
function runHelper(helper: string, action: "get" | "store" | "erase", input: string): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper))
    return Promise.reject(
      new StrataError("ERR_CREDENTIAL_HELPER", `Cannot use the credential helper: bad name "${helper}"`),
    );
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = execFile(program, [action], { timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const out = `${stdout}${stderr}`.trim();
      if (action === "get" && /credentials not found/i.test(out)) return resolve("");
      const why = hasCode(err, "ENOENT") ? "not installed" : out.split("\n")[0] || err.message;
      reject(new StrataError("ERR_CREDENTIAL_HELPER", `Cannot ${action} credentials with ${program}: ${why}`));
    });
    child.stdin?.end(input);
  });
}

/** The helper a registry's credentials go to, if any. */
function helperFor(cfg: ConfigFile, key: string): string | undefined {
  for (const [k, v] of Object.entries(cfg.credHelpers ?? {})) if (k === key || hostOf(k) === hostOf(key)) return v;
  return cfg.credsStore || undefined;
}

/**
 * The credentials Docker's config holds for `registry`; undefined when none.
 * @param registry the registry host as in a reference ("127.0.0.1:5000", "docker.io")
 * @param file config.json to read instead of the default
 * @throws ERR_DOCKER_CONFIG for an unreadable config; ERR_CREDENTIAL_HELPER when a helper fails
 */
export async function getCredentials(registry: string, file?: string): Promise<Credentials | undefined> {
  const cfg = await readConfig(dockerConfigPath(file));
  const key = serverKey(registry);
  const helper = helperFor(cfg, key);
  if (helper) {
    const out = await runHelper(helper, "get", key);
    if (!out.trim()) return undefined;
    const v = JSON.parse(out) as { Username?: string; Secret?: string };
    if (!v.Secret) return undefined;
    return { username: v.Username ?? "<token>", password: v.Secret };
  }
  const keys = key === DOCKER_HUB_KEY ? [DOCKER_HUB_KEY, "index.docker.io", "docker.io"] : [key];
  for (const [k, v] of Object.entries(cfg.auths ?? {})) {
    if (!keys.includes(k) && !keys.includes(hostOf(k))) continue;
    if (v.identitytoken) return { username: "<token>", password: v.identitytoken };
    if (v.auth) {
      const s = Buffer.from(v.auth, "base64").toString("utf8");
      const i = s.indexOf(":");
      if (i > 0) return { username: s.slice(0, i), password: s.slice(i + 1) };
    }
    if (v.username && v.password) return { username: v.username, password: v.password };
  }
  return undefined;
}

/**
 * Saves credentials for `registry` where Docker would: its credential
 * helper, else `auths` in config.json (written atomically, mode 0600).
 * @returns where they went: "docker-credential-<name>" or the config path
 */
export async function storeCredentials(registry: string, creds: Credentials, file?: string): Promise<string> {
  const path = dockerConfigPath(file);
  const cfg = await readConfig(path);
  const key = serverKey(registry);
  const helper = helperFor(cfg, key);
  if (helper) {
    await runHelper(
      helper,
      "store",
      JSON.stringify({ ServerURL: key, Username: creds.username, Secret: creds.password }),
    );
    // Docker leaves an empty entry in auths, so tools listing logins see the registry.
    cfg.auths = { ...cfg.auths, [key]: {} };
    await writeConfig(path, cfg);
    return `docker-credential-${helper}`;
  }
  cfg.auths = {
    ...cfg.auths,
    [key]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString("base64") },
  };
  await writeConfig(path, cfg);
  return path;
}

/**
 * Removes the credentials for `registry` (helper and config entry).
 * @throws ERR_NOT_LOGGED_IN (NotFoundError) when there were none
 */
export async function eraseCredentials(registry: string, file?: string): Promise<void> {
  const path = dockerConfigPath(file);
  const cfg = await readConfig(path);
  const key = serverKey(registry);
  const helper = helperFor(cfg, key);
  const entries = Object.keys(cfg.auths ?? {}).filter((k) => k === key || hostOf(k) === hostOf(key));
  if (helper) await runHelper(helper, "erase", key);
  else if (entries.length === 0)
    throw new NotFoundError("ERR_NOT_LOGGED_IN", `Cannot log out: not logged in to "${registry}"`);
  if (entries.length > 0) {
    for (const k of entries) delete cfg.auths![k];
    await writeConfig(path, cfg);
  }
}

async function writeConfig(path: string, cfg: ConfigFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, `${JSON.stringify(cfg, null, "\t")}\n`, { mode: 0o600 });
}
