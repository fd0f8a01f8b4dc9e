/**
 * Size limits on what images bring in from outside (registries, archives,
 * layouts). Everything read whole into memory has a cap, so a hostile
 * source cannot grow memory without bound; layers are streamed and never
 * read whole.
 *
 * @module
 */

/** Manifests, indexes and the JSON files of archives (manifest.json, index.json): 4 MiB, as Docker and most registries. */
export const MAX_MANIFEST_BYTES = 4 << 20;

/**
 * Image configs: at most their declared size, and never more than 8 MiB
 * (configs with long histories are a few hundred KiB).
 */
export const MAX_CONFIG_BYTES = 8 << 20;

/** Small metadata files of layouts (`oci-layout`, docker-archive `repositories`): 64 KiB. */
export const MAX_SMALL_FILE_BYTES = 64 << 10;
