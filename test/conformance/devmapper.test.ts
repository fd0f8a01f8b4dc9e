/**
 * The conformance suite on devmapper (userspace target here; the kernel one
 * where /dev/mapper/control answers), with a small pool and base device so a
 * case costs about a second. Cases run one at a time: each builds a pool and
 * a filesystem. The xfs run uses a 32-deep chain: every level is a snapshot,
 * an activation, a mount and a deactivation (~0.5 s), and the 128-deep case
 * already runs on ext4.
 */
import { createDevmapper } from "../../src/drivers/devmapper/index.js";
import { driverTestOptions } from "../helpers/drivers.js";
import { driverConformance } from "./driver.js";

const factory = createDevmapper;

driverConformance("devmapper", factory, { options: driverTestOptions("devmapper"), serial: true });
driverConformance("devmapper", factory, {
  options: { ...driverTestOptions("devmapper"), "dm.fs": "xfs" },
  serial: true,
  deepChain: 32,
});
