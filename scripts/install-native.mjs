#!/usr/bin/env node
// npm's install step for strata: keep the native addon and strata-poold that
// came with the package when they work on this machine (same Node ABI, same
// libraries), else build them from native/ (g++, make, libisal-dev,
// libzstd-dev, libfuse3-dev; scripts/setup.sh installs them on Debian).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: "inherit" });

function addonLoads() {
  try {
    createRequire(import.meta.url)("../build/Release/strata_native.node");
    return true;
  } catch {
    return false;
  }
}

if (!addonLoads()) {
  // Debian's nodejs ships its headers: build against them, offline.
  const nodedir = existsSync("/usr/include/node/node.h") ? ["--nodedir=/usr"] : [];
  run("node-gyp", ["rebuild", ...nodedir]);
}
if (!existsSync(`${root}/build/thinpool/strata-poold`)) {
  try {
    run("make", ["-s", "-C", "native/thinpool"]);
  } catch {
    console.error("strata: strata-poold not built (needs libfuse3-dev): devmapper's userspace pool is unavailable");
  }
}
