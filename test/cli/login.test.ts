/**
 * `strata login|logout` against a registry that asks for a password
 * (docker-registry with htpasswd): credentials checked before they are
 * saved, saved in Docker's config.json (or through a `docker-credential-*`
 * helper named by credHelpers), used by pull and push, read by the docker
 * CLI itself, and removed by logout.
 */
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { strata } from "../helpers/cli.js";
import { dockerPeer } from "../helpers/docker.js";
import { makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { run, startRegistry } from "../image/peers.js";

const USER = "alice";
const PASSWORD = "s3cret-pw";

/**
 * A credential helper speaking Docker's protocol (get/store/erase on
 * stdin/stdout), keeping its secrets in one JSON file, as `pass` or
 * `secretservice` would keep them in their stores.
 */
async function writeHelper(bin: string, store: string): Promise<void> {
  await mkdir(bin, { recursive: true });
  const script = join(bin, "docker-credential-strata-test");
  await writeFile(
    script,
    `#!/usr/bin/env python3
import json, sys, os
path = ${JSON.stringify(store)}
db = json.load(open(path)) if os.path.exists(path) else {}
action = sys.argv[1]
data = sys.stdin.read().strip()
if action == "store":
    v = json.loads(data); db[v["ServerURL"]] = {"Username": v["Username"], "Secret": v["Secret"]}
elif action == "get":
    if data not in db: print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({"ServerURL": data, **db[data]}))
elif action == "erase":
    db.pop(data, None)
json.dump(db, open(path, "w"))
`,
  );
  await chmod(script, 0o755);
}

test("login checks and saves credentials in config.json; pull and push use them; logout removes them", async (t) => {
  const reg = await startRegistry(t, { auth: { user: USER, password: PASSWORD } });
  const dir = await tempDir(t, "strata-login-");
  const env = { DOCKER_CONFIG: join(dir, "docker") };
  const g = ["--root", join(dir, "root"), "--driver", "vfs"];
  const cli = (args: string[], input?: string) =>
    strata(args, { env, ...(input !== undefined ? { input: Buffer.from(input) } : {}) });

  const wrong = await cli(["login", reg.addr, "-u", USER, "--password-stdin"], "nope\n");
  t.is(wrong.code, 1);
  t.is(wrong.stderr.trim().split("\n").length, 1, wrong.stderr);
  t.regex(wrong.stderr, /Cannot log in: the registry refused the credentials/);
  await t.throwsAsync(readFile(join(dir, "docker/config.json")), undefined, "nothing saved after a refusal");

  const ok = await cli(["login", reg.addr, "-u", USER, "--password-stdin"], `${PASSWORD}\n`);
  t.is(ok.code, 0, ok.stderr);
  t.is(ok.stdout, "Login Succeeded\n");
  const cfg = JSON.parse(await readFile(join(dir, "docker/config.json"), "utf8"));
  t.is(Buffer.from(cfg.auths[reg.addr].auth, "base64").toString(), `${USER}:${PASSWORD}`, "docker's auths format");

  await writeFile(join(dir, "l.tar"), await makeTar([{ name: "hello", content: "hi" }]));
  t.is((await cli([...g, "import", join(dir, "l.tar"), `${reg.addr}/login/img:1`])).code, 0);
  const push = await cli([...g, "push", "-q", `${reg.addr}/login/img:1`]);
  t.is(push.code, 0, push.stderr);
  const pull = await cli(["--root", join(dir, "root2"), "--driver", "vfs", "pull", "-q", `${reg.addr}/login/img:1`]);
  t.is(pull.code, 0, pull.stderr);

  // The docker CLI reads what strata login wrote (dockerd treats 127.0.0.0/8 registries as insecure).
  const peer = await dockerPeer("peer/tiny:1");
  if (!("reason" in peer)) {
    const ref = `${reg.addr}/login/img:1`;
    await run("docker", ["-H", "unix:///run/peer-docker.sock", "--config", join(dir, "docker"), "pull", ref]);
    t.teardown(() =>
      run("docker", ["-H", "unix:///run/peer-docker.sock", "rmi", ref]).then(
        () => {},
        () => {},
      ),
    );
    t.pass("docker pulled with strata's saved credentials");
  }

  const out = await cli(["logout", reg.addr]);
  t.is(out.code, 0, out.stderr);
  t.deepEqual(JSON.parse(await readFile(join(dir, "docker/config.json"), "utf8")).auths, {});
  const denied = await cli(["--root", join(dir, "root3"), "--driver", "vfs", "pull", `${reg.addr}/login/img:1`]);
  t.is(denied.code, 1);
  t.regex(denied.stderr, /ERR_REGISTRY_AUTH/);
  const again = await cli(["logout", reg.addr]);
  t.is(again.code, 1);
  t.regex(again.stderr, /not logged in/);
});

test("credHelpers: login stores through docker-credential-<name>, pull reads through it, logout erases", async (t) => {
  const reg = await startRegistry(t, { auth: { user: USER, password: PASSWORD } });
  const dir = await tempDir(t, "strata-login-");
  const secrets = join(dir, "helper-store.json");
  await writeHelper(join(dir, "bin"), secrets);
  await mkdir(join(dir, "docker"));
  await writeFile(join(dir, "docker/config.json"), JSON.stringify({ credHelpers: { [reg.addr]: "strata-test" } }));
  const env = { DOCKER_CONFIG: join(dir, "docker"), PATH: `${join(dir, "bin")}:${process.env.PATH}` };
  const cli = (args: string[], input?: string) =>
    strata(args, { env, ...(input !== undefined ? { input: Buffer.from(input) } : {}) });

  const login = await cli(["login", reg.addr, "-u", USER, "--password-stdin"], PASSWORD);
  t.is(login.code, 0, login.stderr);
  t.deepEqual(JSON.parse(await readFile(secrets, "utf8")), { [reg.addr]: { Username: USER, Secret: PASSWORD } });
  const cfg = JSON.parse(await readFile(join(dir, "docker/config.json"), "utf8"));
  t.deepEqual(cfg.auths[reg.addr], {}, "no secret in config.json, only the entry docker leaves");
  t.deepEqual(cfg.credHelpers, { [reg.addr]: "strata-test" }, "the rest of the config is kept");

  const g = ["--root", join(dir, "root"), "--driver", "vfs"];
  await writeFile(join(dir, "l.tar"), await makeTar([{ name: "hello", content: "hi" }]));
  t.is((await cli([...g, "import", join(dir, "l.tar"), `${reg.addr}/helper/img:1`])).code, 0);
  const push = await cli([...g, "push", "-q", `${reg.addr}/helper/img:1`]);
  t.is(push.code, 0, push.stderr);

  t.is((await cli(["logout", reg.addr])).code, 0);
  t.deepEqual(JSON.parse(await readFile(secrets, "utf8")), {});
  const denied = await cli([...g, "push", "-q", `${reg.addr}/helper/img:1`]);
  t.is(denied.code, 1);
  t.regex(denied.stderr, /ERR_REGISTRY_AUTH/);

  await writeFile(join(dir, "docker/config.json"), JSON.stringify({ credsStore: "missing-helper" }));
  const missing = await cli([...g, "push", "-q", `${reg.addr}/helper/img:1`]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /Cannot get credentials with docker-credential-missing-helper: not installed/);
});
