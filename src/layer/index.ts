/**
 * The layer store: chain and diff IDs, read-only and read-write layers, the
 * init layer, all mount reference counts, the Differ (apply and diff above
 * the drivers), the on-disk layerdb, crash recovery, checks and the
 * inter-process lock. README.md in this folder is the theory of operation.
 *
 * @module
 */
export { chainID, chainIDs, type Digest, EMPTY_LAYER_DIGEST, isDigest, assertDigest } from "./ids.js";
export type { ContainerRecord, LayerRecord } from "./layerdb.js";
export { Mounts, type Holder, type HoldInfo } from "./mounts.js";
export { STRATA_OWNER, storeOwner } from "./owner.js";
export { Differ, type Applied } from "./differ.js";
export { type Checker, CHECKERS, type CheckProblem } from "./check.js";
export type { RecoveryReport, StoreParts } from "./recovery.js";
export type { LayerRefs, RefEditor } from "./refs.js";
export { check, LayerStore, MAX_LAYER_DEPTH, prune, type CreateRWOptions, type LayerInfo, withRefs } from "./store.js";
export { INIT_ENTRIES, initPaths, setupInitLayer, sharedInitID } from "./init-layer.js";
