import test from "ava";
import { chainIDs, sha256 } from "./digest.js";
import { hostPlatform, parsePlatform, platformMatches } from "./platform.js";
import { apiHost, familiarName, isLocalRegistry, parseReference } from "./reference.js";

const D = `sha256:${"a".repeat(64)}`;

test("parseReference() follows Docker's defaults for registry, library/ and latest", (t) => {
  t.deepEqual(parseReference("debian"), { registry: "docker.io", repository: "library/debian", tag: "latest" });
  t.deepEqual(parseReference("debian:12-slim"), {
    registry: "docker.io",
    repository: "library/debian",
    tag: "12-slim",
  });
  t.deepEqual(parseReference("user/app"), { registry: "docker.io", repository: "user/app", tag: "latest" });
  t.deepEqual(parseReference("index.docker.io/library/x:1"), {
    registry: "docker.io",
    repository: "library/x",
    tag: "1",
  });
  t.deepEqual(parseReference("localhost/app"), { registry: "localhost", repository: "app", tag: "latest" });
  t.deepEqual(parseReference("127.0.0.1:5000/a/b:c"), { registry: "127.0.0.1:5000", repository: "a/b", tag: "c" });
  t.deepEqual(parseReference(`quay.io/x/y@${D}`), { registry: "quay.io", repository: "x/y", digest: D });
  t.deepEqual(parseReference(`x:1@${D}`), { registry: "docker.io", repository: "library/x", tag: "1", digest: D });
});

test("parseReference() rejects bad names with ERR_INVALID_REFERENCE", (t) => {
  for (const bad of ["", "UPPER", "a//b", "a:b:c", "x@sha256:12", "-x", "a/b:" + "t".repeat(200), "x:-bad"]) {
    const err = t.throws(() => parseReference(bad), undefined, bad);
    t.is((err as { code?: string }).code, "ERR_INVALID_REFERENCE", bad);
  }
});

test("familiarName() and apiHost() show and reach Docker Hub as Docker does", (t) => {
  t.is(familiarName(parseReference("debian")), "debian:latest");
  t.is(familiarName(parseReference("docker.io/user/app:2")), "user/app:2");
  t.is(familiarName(parseReference("127.0.0.1:5000/a:b")), "127.0.0.1:5000/a:b");
  t.is(apiHost("docker.io"), "registry-1.docker.io");
  t.true(isLocalRegistry("localhost:5000"));
  t.true(isLocalRegistry("127.0.0.1:5000"));
  t.false(isLocalRegistry("quay.io"));
});

test("chainIDs() follows the layer chain rule", (t) => {
  const a = sha256("a");
  const b = sha256("b");
  const c = sha256("c");
  const ids: string[] = chainIDs([a, b, c]);
  t.is(ids[0], a);
  t.is(ids[1], sha256(`${a} ${b}`));
  t.is(ids[2], sha256(`${ids[1]} ${c}`));
});

test("platforms: host, parsing, arm64 v8 equivalence", (t) => {
  t.is(hostPlatform().os, "linux");
  t.deepEqual(parsePlatform("linux/arm/v7"), { os: "linux", architecture: "arm", variant: "v7" });
  t.is((t.throws(() => parsePlatform("linux")) as { code?: string }).code, "ERR_INVALID_PLATFORM");
  t.true(
    platformMatches({ os: "linux", architecture: "arm64" }, { os: "linux", architecture: "arm64", variant: "v8" }),
  );
  t.false(
    platformMatches(
      { os: "linux", architecture: "arm", variant: "v6" },
      { os: "linux", architecture: "arm", variant: "v7" },
    ),
  );
});
