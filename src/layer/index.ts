/**
 * The layer store: chain and diff IDs, read-only and read-write layers, the
 * init layer, all mount reference counts, the on-disk layerdb, crash
 * recovery and the inter-process lock.
 *
 * @module
 */
export { chainID, chainIDs, type Digest, EMPTY_LAYER_DIGEST, isDigest, assertDigest } from "./ids.js";
export type { ContainerRecord, LayerRecord } from "./layerdb.js";
export { Mounts, type Holder, type HoldInfo } from "./mounts.js";
export { STRATA_OWNER, storeOwner } from "./owner.js";
export { check, prune, recover, type CheckProblem, type RecoveryReport } from "./recovery.js";
export { type LayerRefs, type RefEditor, withRefs } from "./refs.js";
export { LayerStore, MAX_LAYER_DEPTH, type CreateRWOptions, type LayerInfo } from "./store.js";
export { INIT_ENTRIES, initPaths, setupInitLayer } from "./init-layer.js";
