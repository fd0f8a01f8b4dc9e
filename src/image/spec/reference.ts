/**
 * Image references with Docker's rules: `[registry/]path[:tag][@digest]`.
 * A first component with a "." or ":" or equal to "localhost" is a registry;
 * otherwise the registry is docker.io, and a one-component path on docker.io
 * gets "library/". No tag and no digest means "latest".
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.js";
import { assertDigest } from "./digest.js";

/** A parsed, normalised image reference. */
export interface Reference {
  /** The registry as named ("docker.io" for Docker Hub), with any port. */
  registry: string;
  /** The repository path inside the registry ("library/debian"). */
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

/** Docker Hub's name for itself in references. */
export const DOCKER_HUB = "docker.io";

function bad(ref: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError("ERR_INVALID_REFERENCE", `Cannot parse the image reference: ${why} "${ref}"`);
}

/**
 * Parses and normalises a reference.
 * @throws ERR_INVALID_REFERENCE
 * @example
 * parseReference("debian") // { registry: "docker.io", repository: "library/debian", tag: "latest" }
 */
export function parseReference(ref: string): Reference {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      assertDigest(digest);
    } catch {
      throw bad(ref, "invalid digest");
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, "invalid tag");
  }
  if (!rest) throw bad(ref, "empty name");
  const parts = rest.split("/");
  let registry = DOCKER_HUB;
  if (parts.length > 1 && (parts[0].includes(".") || parts[0].includes(":") || parts[0] === "localhost")) {
    registry = parts.shift() as string;
    if (!DOMAIN.test(registry)) throw bad(ref, "invalid registry");
  }
  if (registry === "index.docker.io") registry = DOCKER_HUB;
  for (const p of parts) if (!COMPONENT.test(p)) throw bad(ref, "invalid repository name");
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift("library");
  const repository = parts.join("/");
  if (repository.length > 255) throw bad(ref, "repository name too long");
  if (!tag && !digest) tag = "latest";
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** The full name without tag or digest: "docker.io/library/debian". */
export function repoName(r: Pick<Reference, "registry" | "repository">): string {
  return `${r.registry}/${r.repository}`;
}

/** The short form Docker shows: "debian:12", "quay.io/x/y:1". */
export function familiarName(r: Reference): string {
  let name = repoName(r);
  if (r.registry === DOCKER_HUB) {
    name = r.repository.startsWith("library/") ? r.repository.slice(8) : r.repository;
  }
  return name + (r.tag ? `:${r.tag}` : "") + (r.digest ? `@${r.digest}` : "");
}

/** The host to talk to for a registry: Docker Hub's API lives on registry-1.docker.io. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? "registry-1.docker.io" : registry;
}

/** Plain HTTP is used for localhost, 127.0.0.0/8 and ::1 without asking. */
export function isLocalRegistry(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
