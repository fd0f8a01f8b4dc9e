/** dockerd on `strata serve --driver overlay --docker-plugin`: the shared scenarios. */
import { supportedDrivers } from "../helpers/drivers.js";
import { dockerScenarios } from "./docker-scenarios.js";
import test from "ava";

if ((await supportedDrivers()).includes("overlay")) dockerScenarios("overlay");
else test("overlay: dockerd on strata serve", (t) => t.pass("skipped: overlay is not supported here"));
