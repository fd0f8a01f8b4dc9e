/**
 * Decompression bombs through `strata load` and `strata pull`, run as
 * child processes: a 2 GiB layer of zeros that zstd packs into a few dozen
 * KiB, as the layer of a docker-archive and of a registry image. Each
 * succeeds (the layer is valid) with a peak RSS under 600 MiB: nothing on
 * the way (decompression, hashing, spooling, parallel downloads, the apply)
 * holds the data in memory.
 */
import test from "ava";
import { join } from "node:path";
import { tempDir } from "../helpers/tmp.js";
import { skopeo, startRegistry } from "../image/peers.js";
import { strataMeasured, writeBombArchive, writeBombLayout, writeZstdBomb } from "./bomb.js";

/** The bar of issue 19: apply, load and pull of the bomb stay under 600 MiB RSS. */
const RSS_CEILING = 600 << 20;
/** 2 GiB of zeros. */
const ZEROS = 2 ** 31;

const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

test("strata load of a docker-archive with a 2 GiB zstd bomb layer stays under 600 MiB RSS", async (t) => {
  const dir = await tempDir(t, "strata-bomb-", "/var/tmp");
  const bomb = await writeZstdBomb(join(dir, "bomb.zst"), ZEROS);
  t.log(`bomb: ${bomb.size} bytes of zstd for ${ZEROS} bytes of zeros`);
  const archive = join(dir, "bomb.tar");
  await writeBombArchive(archive, bomb, "hostile/bomb:load");
  const root = join(dir, "root");
  const r = await strataMeasured(["--root", root, "--driver", "vfs", "load", "-q", archive], join(dir, "peak"));
  t.is(r.code, 0, r.stderr);
  t.log(`strata load: peak RSS ${mib(r.peakRss)}`);
  t.true(r.peakRss < RSS_CEILING, `peak RSS ${mib(r.peakRss)}`);
});

test("strata pull of an image with a 2 GiB zstd bomb layer stays under 600 MiB RSS", async (t) => {
  const reg = await startRegistry(t);
  const dir = await tempDir(t, "strata-bomb-", "/var/tmp");
  const bomb = await writeZstdBomb(join(dir, "bomb.zst"), ZEROS);
  const layout = join(dir, "layout");
  await writeBombLayout(layout, bomb, "v1");
  await skopeo("copy", `oci:${layout}:v1`, `docker://${reg.addr}/hostile/bomb:v1`, "--dest-tls-verify=false");
  const root = join(dir, "root");
  const r = await strataMeasured(
    ["--root", root, "--driver", "vfs", "pull", "-q", `${reg.addr}/hostile/bomb:v1`],
    join(dir, "peak"),
  );
  t.is(r.code, 0, r.stderr);
  t.log(`strata pull: peak RSS ${mib(r.peakRss)}`);
  t.true(r.peakRss < RSS_CEILING, `peak RSS ${mib(r.peakRss)}`);
});
