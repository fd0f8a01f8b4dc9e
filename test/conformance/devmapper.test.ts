/**
 * The conformance suite on devmapper (userspace target here; the kernel one
 * where /dev/mapper/control answers), with a small pool and base device so a
 * case costs about a second. Teardown uses the driver's full shutdown, which
 * also unmounts what a failing case left mounted.
 */
import { createDevmapper, type DevmapperDriver } from "../../src/drivers/devmapper/index.js";
import type { DriverFactory } from "../../src/graphdriver/driver.js";
import { driverTestOptions } from "../helpers/drivers.js";
import { driverConformance } from "./driver.js";

const factory: DriverFactory = async (opts) => {
  const d = (await createDevmapper(opts)) as DevmapperDriver;
  d.cleanup = () => d.shutdown();
  return d;
};

driverConformance("devmapper", factory, { options: driverTestOptions("devmapper"), serial: true });
driverConformance("devmapper", factory, {
  options: { ...driverTestOptions("devmapper"), "dm.fs": "xfs" },
  serial: true,
  deepChain: 32,
});
