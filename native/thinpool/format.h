// On-disk constants and primitives of the dm-thin metadata format (kernel
// drivers/md/dm-thin-metadata.c and drivers/md/persistent-data/): 4 KiB
// blocks, CRC-32C checksums XORed per block type, little-endian fields.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tp {

constexpr uint32_t kMetaBlock = 4096;
constexpr uint64_t kMagic = 27022010;
constexpr uint32_t kVersion = 2;
// Checksum XOR constants per block type.
constexpr uint32_t kSuperblockXor = 160774;
constexpr uint32_t kNodeXor = 121107;
constexpr uint32_t kBitmapXor = 240779;
constexpr uint32_t kIndexXor = 160478;
// Btree node flags.
constexpr uint32_t kInternalNode = 1;
constexpr uint32_t kLeafNode = 2;
constexpr uint32_t kNodeHeader = 32;
// Space maps: a bitmap block holds 2 bits per block after a 16-byte header.
constexpr uint32_t kBitmapHeader = 16;
constexpr uint64_t kEntriesPerBitmap = (kMetaBlock - kBitmapHeader) * 4;  // 16320
constexpr uint32_t kMaxMetadataBitmaps = 255;                             // index entries in one block
constexpr uint64_t kMaxMetadataBlocks = kMaxMetadataBitmaps * kEntriesPerBitmap;
constexpr uint32_t kIndexEntrySize = 16;  // blocknr u64, nr_free u32, none_free_before u32
// Superblock field offsets.
constexpr size_t kSbBlocknr = 0x08, kSbMagic = 0x20, kSbVersion = 0x28, kSbTime = 0x2c, kSbTrans = 0x30,
                 kSbHeldRoot = 0x38, kSbDataSm = 0x40, kSbMetaSm = 0xc0, kSbMappingRoot = 0x140, kSbDetailsRoot = 0x148,
                 kSbDataBlockSize = 0x150, kSbMetaBlockSize = 0x154, kSbMetaNrBlocks = 0x158;
// Device ids and mapping times are 24-bit in the format.
constexpr uint64_t kMaxDevId = (1u << 24) - 1;
constexpr uint32_t kTimeMask = (1u << 24) - 1;
constexpr uint32_t kDetailsValueSize = 24;

/** Raw CRC-32C (reflected Castagnoli), initial ~0, no final inversion. */
uint32_t crc32c(const uint8_t* data, size_t len, uint32_t crc = 0xffffffffu);
/** Stores the checksum of a 4 KiB block (bytes 4..4095, XOR `xorv`) at offset 0. */
void sealBlock(uint8_t* blk, uint32_t xorv);
/** True when the stored checksum matches. */
bool checkBlock(const uint8_t* blk, uint32_t xorv);
/** Btree node capacity for a value size: entries that fit, rounded down to a multiple of 3. */
inline uint32_t maxEntries(uint32_t valueSize) {
  uint32_t n = (kMetaBlock - kNodeHeader) / (8 + valueSize);
  return n / 3 * 3;
}

inline void put32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }  // little-endian host assumed (x86/arm64)
inline void put64(uint8_t* p, uint64_t v) { memcpy(p, &v, 8); }
inline uint32_t get32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
inline uint64_t get64(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/** A malformed or unreadable metadata structure. */
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace tp
