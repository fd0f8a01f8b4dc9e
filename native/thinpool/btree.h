// Reading and writing persistent-data btrees: nodes of u64 keys and
// fixed-size values. Writing builds a whole tree bottom-up from sorted
// entries into blocks handed out by a BlockSink (the commit's allocator).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "format.h"

namespace tp {

using MetaBlock = std::array<uint8_t, kMetaBlock>;

/** Reads checksummed 4 KiB blocks from the metadata file. */
class MetaReader {
 public:
  MetaReader(int fd, uint64_t nrBlocks) : fd_(fd), nrBlocks_(nrBlocks) {}
  /** Reads block `b`, verifying its checksum with `xorv` and its self-reference at offset 8. */
  void read(uint64_t b, uint32_t xorv, MetaBlock& out, const char* what) const;

 private:
  int fd_;
  uint64_t nrBlocks_;
};

/** Where a commit puts new blocks: allocation plus the written images. */
class BlockSink {
 public:
  virtual ~BlockSink() = default;
  /** A metadata block free in both the committed and the new metadata. */
  virtual uint64_t allocate() = 0;
  /** Queues a finished block image (checksum already sealed) for writing. */
  virtual void emit(uint64_t b, const MetaBlock& blk) = 0;
};

/**
 * Writes a btree holding `n` entries (keys ascending, values packed
 * back to back, `valueSize` bytes each) and returns its root block. Leaves
 * are filled evenly so every non-root node is at least half full. `nodes`
 * receives every block written.
 */
uint64_t writeBtree(BlockSink& sink, const uint64_t* keys, const uint8_t* values, size_t n, uint32_t valueSize,
                    std::vector<uint64_t>* nodes = nullptr);

/**
 * Visits a btree depth-first in key order: `onNode(block)` for every node
 * (return false to skip descending into a node already seen), `onEntry`
 * for each leaf entry.
 */
void walkBtree(const MetaReader& rd, uint64_t root, uint32_t valueSize, const std::function<bool(uint64_t)>& onNode,
               const std::function<void(uint64_t key, const uint8_t* value)>& onEntry);

}  // namespace tp
