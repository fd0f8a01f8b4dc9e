/**
 * Whiteout names. Every tar strata reads or writes uses the AUFS form;
 * overlay's on-disk form (char device 0/0, `trusted.overlay.opaque=y`) is
 * converted only at the overlay driver's edge.
 *
 * @module
 */

/** `.wh.NAME` deletes NAME from the layers below. */
export const WHITEOUT_PREFIX = ".wh.";
/** Names starting with this are AUFS metadata, not whiteouts. */
export const WHITEOUT_META_PREFIX = ".wh..wh.";
/** AUFS hardlink store directory. */
export const WHITEOUT_LINK_DIR = ".wh..wh.plnk";
/** `DIR/.wh..wh..opq` hides everything below DIR from lower layers. */
export const WHITEOUT_OPAQUE = ".wh..wh..opq";
/** The xattr overlayfs uses to mark an opaque directory. */
export const OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque";

/** How whiteouts are materialised when a layer is applied. */
export type WhiteoutFormat = "aufs" | "overlay";
