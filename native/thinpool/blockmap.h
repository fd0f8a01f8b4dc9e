// A thin device's mapping in memory: virtual block -> data block + time, in
// chunks of consecutive virtual blocks that snapshots share copy-on-write
// (the way dm-thin shares btree nodes): copying a BlockMap copies only the
// chunk index; the first change to a shared chunk clones that chunk.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>

namespace tp {

/** One virtual block's mapping. */
struct Mapping {
  uint64_t block;  // data block
  uint32_t time;   // pool time when the mapping was made (24 bits)
};

/** Virtual block -> Mapping, ordered, with cheap copies. Not thread-safe (the pool's state lock guards it). */
class BlockMap {
 public:
  static constexpr uint64_t kChunkBlocks = 256;

  /** The mapping of `vb`, or null when unmapped. */
  const Mapping* find(uint64_t vb) const {
    auto it = chunks_.find(vb / kChunkBlocks);
    if (it == chunks_.end()) return nullptr;
    const Mapping& m = it->second->at[vb % kChunkBlocks];
    return m.block == kUnmapped ? nullptr : &m;
  }

  /** Maps `vb`; when it was mapped, stores the previous mapping in `*old` and returns true. */
  bool set(uint64_t vb, Mapping m, Mapping* old = nullptr) {
    Mapping& slot = writable(vb / kChunkBlocks).at[vb % kChunkBlocks];
    bool was = slot.block != kUnmapped;
    if (was && old) *old = slot;
    if (!was) {
      chunks_[vb / kChunkBlocks]->count++;
      size_++;
    }
    slot = m;
    return was;
  }

  /** Unmaps `vb`; returns false when it was not mapped, else stores the old mapping in `*old`. */
  bool erase(uint64_t vb, Mapping* old = nullptr) {
    if (!find(vb)) return false;
    uint64_t ci = vb / kChunkBlocks;
    Chunk& c = writable(ci);
    if (old) *old = c.at[vb % kChunkBlocks];
    c.at[vb % kChunkBlocks].block = kUnmapped;
    size_--;
    if (--c.count == 0) chunks_.erase(ci);
    return true;
  }

  /** Mapped blocks. */
  uint64_t size() const { return size_; }

  /** Calls f(vb, mapping) for every mapped block in [first, last], ascending. */
  template <typename F>
  void forRange(uint64_t first, uint64_t last, F f) const {
    for (auto it = chunks_.lower_bound(first / kChunkBlocks); it != chunks_.end(); ++it) {
      uint64_t base = it->first * kChunkBlocks;
      if (base > last) return;
      for (uint64_t i = 0; i < kChunkBlocks; i++) {
        const Mapping& m = it->second->at[i];
        if (m.block != kUnmapped && base + i >= first && base + i <= last) f(base + i, m);
      }
    }
  }

  /** Calls f(vb, mapping) for every mapped block, ascending. */
  template <typename F>
  void forEach(F f) const {
    forRange(0, UINT64_MAX, f);
  }

 private:
  static constexpr uint64_t kUnmapped = UINT64_MAX;
  struct Chunk {
    Chunk() {
      for (auto& m : at) m = Mapping{kUnmapped, 0};
    }
    std::array<Mapping, kChunkBlocks> at;
    uint32_t count = 0;
  };

  // The chunk, created when missing, cloned when shared with another map.
  Chunk& writable(uint64_t ci) {
    auto& p = chunks_[ci];
    if (!p) p = std::make_shared<Chunk>();
    else if (p.use_count() > 1) p = std::make_shared<Chunk>(*p);
    return *p;
  }

  std::map<uint64_t, std::shared_ptr<Chunk>> chunks_;
  uint64_t size_ = 0;
};

}  // namespace tp
