/**
 * Dockerfile instructions applied to an image's container config, as
 * `docker commit -c` and `docker import -c` take them: CMD, ENTRYPOINT,
 * ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR (the keys of the
 * config's `config` object: Cmd, Entrypoint, Env, ExposedPorts, Labels,
 * OnBuild, User, Volumes, WorkingDir).
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.js";

/** The container config inside an image config (`config.config`), as Docker writes it. */
export type ContainerConfig = Record<string, unknown>;

const bad = (change: string, why: string) =>
  new InvalidArgumentError("ERR_INVALID_CHANGE", `Cannot apply the change: ${why} "${change}"`);

/** `["a","b"]` (exec form) or a shell command (wrapped in /bin/sh -c), as Dockerfile reads CMD. */
function commandOf(change: string, rest: string): string[] {
  if (rest.startsWith("[")) {
    let v: unknown;
    try {
      v = JSON.parse(rest);
    } catch {
      throw bad(change, "not a JSON array");
    }
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw bad(change, "not an array of strings");
    return v as string[];
  }
  return ["/bin/sh", "-c", rest];
}

/** `k=v k2="v 2"` pairs, or the legacy `k v` form with one pair. */
function pairsOf(change: string, rest: string): Array<[string, string]> {
  if (!/^[^\s=]+=/.test(rest)) {
    const m = /^(\S+)\s+(.*)$/.exec(rest);
    if (!m) throw bad(change, "expected KEY=VALUE");
    return [[m[1]!, m[2]!]];
  }
  const out: Array<[string, string]> = [];
  const re = /([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(rest))) {
    out.push([m[1]!, m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]!]);
    end = re.lastIndex;
  }
  if (end !== rest.length) throw bad(change, "expected KEY=VALUE");
  return out;
}

/**
 * Applies Dockerfile instructions to a copy of a container config.
 * @param config the image's `config` object (may be empty)
 * @param changes instructions such as `CMD ["sh"]`, `ENV A=1`, `EXPOSE 80`
 * @returns the new config; `config` is not modified
 * @throws ERR_INVALID_CHANGE (InvalidArgumentError) for an unknown instruction or a malformed value
 * @example
 * applyChanges({}, ["ENV PATH=/bin", 'CMD ["sh"]']); // { Env: ["PATH=/bin"], Cmd: ["sh"] }
 */
export function applyChanges(config: ContainerConfig, changes: string[]): ContainerConfig {
  const c: ContainerConfig = structuredClone(config);
  for (const change of changes) {
    const m = /^\s*([A-Za-z]+)\s+(.*?)\s*$/s.exec(change);
    if (!m) throw bad(change, "expected INSTRUCTION VALUE");
    const rest = m[2]!;
    switch (m[1]!.toUpperCase()) {
      case "CMD":
        c.Cmd = commandOf(change, rest);
        break;
      case "ENTRYPOINT":
        c.Entrypoint = commandOf(change, rest);
        break;
      case "ENV": {
        const env = [...((c.Env as string[] | undefined) ?? [])];
        for (const [k, v] of pairsOf(change, rest)) {
          const i = env.findIndex((e) => e.split("=")[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        c.Env = env;
        break;
      }
      case "LABEL":
        c.Labels = {
          ...((c.Labels as Record<string, string> | undefined) ?? {}),
          ...Object.fromEntries(pairsOf(change, rest)),
        };
        break;
      case "EXPOSE": {
        const ports = { ...((c.ExposedPorts as Record<string, object> | undefined) ?? {}) };
        for (const p of rest.split(/\s+/)) {
          if (!/^\d{1,5}(\/(tcp|udp|sctp))?$/i.test(p)) throw bad(change, "not a port");
          ports[p.includes("/") ? p.toLowerCase() : `${p}/tcp`] = {};
        }
        c.ExposedPorts = ports;
        break;
      }
      case "VOLUME": {
        const vols = { ...((c.Volumes as Record<string, object> | undefined) ?? {}) };
        const list = rest.startsWith("[") ? commandOf(change, rest) : rest.split(/\s+/);
        for (const v of list) vols[v] = {};
        c.Volumes = vols;
        break;
      }
      case "USER":
        c.User = rest;
        break;
      case "WORKDIR":
        c.WorkingDir = rest;
        break;
      case "ONBUILD":
        c.OnBuild = [...((c.OnBuild as string[] | undefined) ?? []), rest];
        break;
      default:
        throw bad(change, "unknown instruction (known: CMD ENTRYPOINT ENV EXPOSE LABEL ONBUILD USER VOLUME WORKDIR)");
    }
  }
  return c;
}
