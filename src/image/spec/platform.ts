/**
 * Platform matching for manifest lists and OCI indexes.
 *
 * @module
 */
import { arch } from "node:process";
import { InvalidArgumentError, NotFoundError } from "../../errors.js";
import type { Descriptor, Platform } from "./types.js";

const GOARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
};

/** The host's platform in OCI terms (linux/amd64, linux/arm64/v8…). */
export function hostPlatform(): Platform {
  const a = GOARCH[arch] ?? arch;
  return { os: "linux", architecture: a, ...(a === "arm64" ? { variant: "v8" } : {}) };
}

/** Parses "os/arch[/variant]". @throws ERR_INVALID_PLATFORM */
export function parsePlatform(s: string): Platform {
  const [os, architecture, variant, extra] = s.split("/");
  if (!os || !architecture || extra !== undefined) {
    throw new InvalidArgumentError(
      "ERR_INVALID_PLATFORM",
      `Cannot parse the platform: expected os/arch[/variant] "${s}"`,
    );
  }
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/** Whether an index entry's platform satisfies `want` (arm64 "v8" equals no variant). */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  const norm = (p: Platform) => (p.architecture === "arm64" && (p.variant ?? "v8") === "v8" ? "" : (p.variant ?? ""));
  return !want.variant || norm(have) === norm(want);
}

/** The first entry matching `want`. @throws ERR_PLATFORM_NOT_FOUND */
export function selectPlatform(entries: Descriptor[], want: Platform, what: string): Descriptor {
  const hit = entries.find((d) => platformMatches(d.platform, want));
  if (!hit) {
    const have = entries.map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}` : "?")).join(", ");
    throw new NotFoundError(
      "ERR_PLATFORM_NOT_FOUND",
      `Cannot select a manifest for ${want.os}/${want.architecture}${want.variant ? `/${want.variant}` : ""} in ${what}: it has "${have}"`,
    );
  }
  return hit;
}
