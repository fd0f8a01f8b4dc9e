/**
 * A test-only entry for the import crash tests: runs one import (load, pull
 * or commit) on a store the way `strata` does, with import hooks that stop
 * it at an exact step of its transaction. At that step it writes its pid
 * to PAUSE_FILE (atomically) and waits until the file is removed: the test
 * SIGKILLs it there, or removes the file to let it finish.
 *
 *   node import-child.js PAUSE_FILE layersHeld|recordWritten ROOT DRIVER load PATH TAG
 *   node import-child.js PAUSE_FILE ... ROOT DRIVER pull REF
 *   node import-child.js PAUSE_FILE ... ROOT DRIVER commit CONTAINER TAG
 */
import { rename, stat, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { builtinDrivers } from "../../src/drivers/index.js";
import {
  commitContainer,
  type ImportHooks,
  ImageStore,
  layerStoreSink,
  loadImages,
  pullImage,
} from "../../src/image/index.js";
import { LayerStore } from "../../src/layer/index.js";

const [pauseFile, point, root, driverName, op, ...args] = process.argv.slice(2);

async function pause(): Promise<void> {
  await writeFile(`${pauseFile}.tmp`, String(process.pid));
  await rename(`${pauseFile}.tmp`, pauseFile!);
  while (
    await stat(pauseFile!).then(
      () => true,
      () => false,
    )
  )
    await sleep(20);
}

const hooks: ImportHooks = { [point as keyof ImportHooks]: pause };
const driver = await builtinDrivers().select(driverName, { root: root!, options: {} });
const layers = await LayerStore.open(root!, driver);
const images = await ImageStore.openFor(root!, driver.name);
try {
  const sink = layerStoreSink(layers);
  if (op === "load") {
    const recs = await loadImages(args[0]!, sink, images, { tag: args[1], hooks });
    console.log(`loaded ${recs.map((r) => r.id).join(" ")}`);
  } else if (op === "pull") {
    const { image } = await pullImage(args[0]!, sink, images, { hooks });
    console.log(`pulled ${image.id}`);
  } else if (op === "commit") {
    const { image } = await commitContainer(layers, images, args[0]!, { tag: args[1], hooks });
    console.log(`committed ${image.id}`);
  } else {
    throw new Error(`unknown operation ${op}`);
  }
} finally {
  await images.close();
  await layers.close();
  await driver.close();
}
