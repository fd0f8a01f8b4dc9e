import test from "ava";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dockerConfigCredentials, parseChallenge } from "./auth.js";

test("parseChallenge() reads bearer and basic challenges", (t) => {
  t.deepEqual(
    parseChallenge(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull"',
    ),
    {
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/x:pull",
      },
    },
  );
  t.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: "basic", params: { realm: "Registry Realm" } });
});

test("dockerConfigCredentials() finds auths by registry, and Docker Hub by its v1 key", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "strata-auth-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "config.json");
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  await writeFile(
    file,
    JSON.stringify({
      auths: { "https://index.docker.io/v1/": { auth: b64("hub:pw") }, "127.0.0.1:5000": { auth: b64("me:p:w") } },
    }),
  );
  t.deepEqual(await dockerConfigCredentials("docker.io", file), { username: "hub", password: "pw" });
  t.deepEqual(await dockerConfigCredentials("127.0.0.1:5000", file), { username: "me", password: "p:w" });
  t.is(await dockerConfigCredentials("quay.io", file), undefined);
  t.is(await dockerConfigCredentials("quay.io", join(dir, "none.json")), undefined);
});
