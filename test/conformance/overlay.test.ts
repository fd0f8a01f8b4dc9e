import { createOverlay } from "../../src/drivers/overlay/index.js";
import { driverConformance } from "./driver.js";

driverConformance("overlay", createOverlay);
driverConformance("overlay", createOverlay, { options: { "overlay.naive_diff": "true" } });
