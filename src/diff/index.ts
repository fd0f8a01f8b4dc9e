/**
 * The naive diff engine shared by every driver: apply a layer tar to a tree,
 * compare two trees (`docker diff` rules), export changes or a whole tree as
 * a tar with AUFS whiteouts, and size a change list.
 *
 * @module
 */
export { type ApplyOptions, type ApplyResult, applyLayer, type IdMapping } from "./apply.js";
export { type Change, type ChangesOptions, changes, sameFsTime } from "./changes.js";
export { type ExportOptions, exportChanges, exportTree } from "./export.js";
export { changesSize } from "./size.js";
