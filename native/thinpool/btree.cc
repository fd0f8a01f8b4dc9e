#include "btree.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace tp {

void MetaReader::read(uint64_t b, uint32_t xorv, MetaBlock& out, const char* what) const {
  if (b >= nrBlocks_) throw FormatError(std::string(what) + " block " + std::to_string(b) + " beyond metadata end");
  ssize_t n = pread(fd_, out.data(), kMetaBlock, off_t(b * kMetaBlock));
  if (n != ssize_t(kMetaBlock))
    throw FormatError(std::string("cannot read metadata block ") + std::to_string(b) + ": " +
                      (n < 0 ? strerror(errno) : "short read"));
  if (!checkBlock(out.data(), xorv))
    throw FormatError(std::string(what) + " block " + std::to_string(b) + " has a bad checksum");
  if (get64(out.data() + 8) != b)
    throw FormatError(std::string(what) + " block " + std::to_string(b) + " names itself " +
                      std::to_string(get64(out.data() + 8)));
}

namespace {
// One node image from entries [keys, keys+n) with values of valueSize bytes.
void fillNode(MetaBlock& blk, uint64_t self, bool leaf, const uint64_t* keys, const uint8_t* values, size_t n,
              uint32_t valueSize) {
  blk.fill(0);
  uint32_t max = maxEntries(valueSize);
  put32(blk.data() + 4, leaf ? kLeafNode : kInternalNode);
  put64(blk.data() + 8, self);
  put32(blk.data() + 16, uint32_t(n));
  put32(blk.data() + 20, max);
  put32(blk.data() + 24, valueSize);
  memcpy(blk.data() + kNodeHeader, keys, n * 8);
  memcpy(blk.data() + kNodeHeader + size_t(max) * 8, values, n * valueSize);
  sealBlock(blk.data(), kNodeXor);
}
}  // namespace

uint64_t writeBtree(BlockSink& sink, const uint64_t* keys, const uint8_t* values, size_t n, uint32_t valueSize,
                    std::vector<uint64_t>* nodes) {
  MetaBlock blk;
  bool leaf = true;
  std::vector<uint64_t> levelKeys(keys, keys + n);
  std::vector<uint8_t> levelValues(values, values + n * valueSize);
  for (;;) {
    uint32_t max = maxEntries(valueSize);
    size_t count = levelKeys.size();
    size_t nodesHere = count == 0 ? 1 : (count + max - 1) / max;
    std::vector<uint64_t> upKeys;
    std::vector<uint8_t> upValues;
    size_t pos = 0;
    for (size_t i = 0; i < nodesHere; i++) {
      // Even split: the first (count % nodesHere) nodes take one extra entry.
      size_t take = count / nodesHere + (i < count % nodesHere ? 1 : 0);
      uint64_t self = sink.allocate();
      fillNode(blk, self, leaf, levelKeys.data() + pos, levelValues.data() + pos * valueSize, take, valueSize);
      sink.emit(self, blk);
      if (nodes) nodes->push_back(self);
      upKeys.push_back(take ? levelKeys[pos] : 0);
      uint8_t v[8];
      put64(v, self);
      upValues.insert(upValues.end(), v, v + 8);
      pos += take;
    }
    if (nodesHere == 1) return get64(upValues.data());
    levelKeys.swap(upKeys);
    levelValues.swap(upValues);
    valueSize = 8;
    leaf = false;
  }
}

namespace {
void walkNode(const MetaReader& rd, uint64_t b, uint32_t valueSize, int depth,
              const std::function<bool(uint64_t)>& onNode,
              const std::function<void(uint64_t, const uint8_t*)>& onEntry) {
  if (depth > 16) throw FormatError("btree deeper than 16 levels at block " + std::to_string(b));
  if (!onNode(b)) return;
  MetaBlock blk;
  rd.read(b, kNodeXor, blk, "btree node");
  uint32_t flags = get32(blk.data() + 4), nr = get32(blk.data() + 16), max = get32(blk.data() + 20),
           vs = get32(blk.data() + 24);
  if (nr > max || kNodeHeader + size_t(max) * (8 + vs) > kMetaBlock)
    throw FormatError("btree node " + std::to_string(b) + " has a bad header");
  const uint8_t* keyp = blk.data() + kNodeHeader;
  const uint8_t* valp = keyp + size_t(max) * 8;
  if (flags & kLeafNode) {
    if (vs != valueSize) throw FormatError("btree leaf " + std::to_string(b) + " has value size " + std::to_string(vs));
    for (uint32_t i = 0; i < nr; i++) onEntry(get64(keyp + i * 8), valp + size_t(i) * vs);
  } else {
    if (vs != 8)
      throw FormatError("btree internal node " + std::to_string(b) + " has value size " + std::to_string(vs));
    std::vector<uint64_t> children(nr);
    for (uint32_t i = 0; i < nr; i++) children[i] = get64(valp + i * 8);
    for (uint64_t c : children) walkNode(rd, c, valueSize, depth + 1, onNode, onEntry);
  }
}
}  // namespace

void walkBtree(const MetaReader& rd, uint64_t root, uint32_t valueSize, const std::function<bool(uint64_t)>& onNode,
               const std::function<void(uint64_t, const uint8_t*)>& onEntry) {
  walkNode(rd, root, valueSize, 0, onNode, onEntry);
}

}  // namespace tp
