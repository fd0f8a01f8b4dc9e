import { createVfs } from "../../src/drivers/vfs/index.js";
import { driverConformance } from "./driver.js";

driverConformance("vfs", createVfs);
