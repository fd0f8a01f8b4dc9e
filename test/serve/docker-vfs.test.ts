/** dockerd on `strata serve --driver vfs --docker-plugin`: the shared scenarios. */
import { supportedDrivers } from "../helpers/drivers.js";
import { dockerScenarios } from "./docker-scenarios.js";
import test from "ava";

if ((await supportedDrivers()).includes("vfs")) dockerScenarios("vfs");
else test("vfs: dockerd on strata serve", (t) => t.pass("skipped: vfs is not supported here"));
