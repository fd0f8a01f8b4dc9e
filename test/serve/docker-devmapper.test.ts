/** dockerd on `strata serve --driver devmapper --docker-plugin`: the shared scenarios. */
import { supportedDrivers } from "../helpers/drivers.js";
import { dockerScenarios } from "./docker-scenarios.js";
import test from "ava";

if ((await supportedDrivers()).includes("devmapper")) dockerScenarios("devmapper");
else test("devmapper: dockerd on strata serve", (t) => t.pass("skipped: devmapper is not supported here"));
