// Commits: the whole metadata is built afresh (under the state lock) into
// blocks that are free in the committed metadata (device subtrees whose
// mapping did not change are reused as they are), then written and synced
// without the lock, and only then the superblock is written and synced. A
// crash at any point leaves the previous commit intact.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <cerrno>
#include <cstring>

#include "io.h"
#include "pool.h"

namespace tp {

namespace {

// Hands out metadata blocks free in both the committed and the new metadata,
// and collects the new block images.
class CommitSink : public BlockSink {
 public:
  CommitSink(const std::vector<uint8_t>& committed, std::vector<uint32_t>& used) : committed_(committed), used_(used) {}
  uint64_t allocate() override {
    for (; cursor_ < used_.size(); cursor_++) {
      if (!committed_[cursor_] && !used_[cursor_]) {
        used_[cursor_] = 1;
        return cursor_++;
      }
    }
    throw PoolError(ENOSPC, "out of metadata space");
  }
  void emit(uint64_t b, const MetaBlock& blk) override { blocks_.emplace_back(b, blk); }
  // Writes the images in block order, coalescing neighbours.
  void flush(int fd) {
    std::sort(blocks_.begin(), blocks_.end(), [](auto& a, auto& b) { return a.first < b.first; });
    std::vector<uint8_t> run;
    for (size_t i = 0; i < blocks_.size();) {
      size_t j = i;
      run.clear();
      while (j < blocks_.size() && blocks_[j].first == blocks_[i].first + (j - i)) {
        run.insert(run.end(), blocks_[j].second.begin(), blocks_[j].second.end());
        j++;
      }
      pwriteAll(fd, run.data(), run.size(), blocks_[i].first * kMetaBlock);
      i = j;
    }
  }

 private:
  const std::vector<uint8_t>& committed_;
  std::vector<uint32_t>& used_;
  uint64_t cursor_ = 1;  // block 0 is the superblock
  std::vector<std::pair<uint64_t, MetaBlock>> blocks_;
};

// One space-map bitmap block covering entries [first, first + kEntriesPerBitmap).
template <typename CountOf>
void fillBitmap(MetaBlock& blk, uint64_t self, uint64_t first, uint64_t total, CountOf countOf, uint32_t& nrFree,
                uint32_t& noneFreeBefore) {
  blk.fill(0);
  put64(blk.data() + 8, self);
  uint64_t allocated = 0;
  noneFreeBefore = uint32_t(kEntriesPerBitmap);
  for (uint64_t j = 0; j < kEntriesPerBitmap && first + j < total; j++) {
    uint32_t c = countOf(first + j);
    if (c == 0) {
      if (noneFreeBefore == kEntriesPerBitmap) noneFreeBefore = uint32_t(j);
      continue;
    }
    allocated++;
    uint32_t v = std::min<uint32_t>(c, 3);
    uint8_t& byte = blk[kBitmapHeader + j / 4];
    unsigned sh = unsigned(j % 4) * 2;
    byte |= uint8_t(((v >> 1) & 1) << sh) | uint8_t((v & 1) << (sh + 1));
  }
  nrFree = uint32_t(kEntriesPerBitmap - allocated);
  sealBlock(blk.data(), kBitmapXor);
}

void syncFd(int fd, const char* what) {
  if (fdatasync(fd) != 0) throw PoolError(errno, std::string("cannot sync the ") + what + ": " + strerror(errno));
}

}  // namespace

// What a commit writes, built under the state lock from one consistent view
// of the pool, then written and synced without the lock.
struct Pool::CommitImage {
  struct Device {
    uint64_t id, changeGen, root;
    bool rewritten;
    std::vector<uint64_t> nodes;
  };
  std::vector<uint32_t> used;  // metadata reference counts of the new image
  std::unique_ptr<CommitSink> sink;
  MetaBlock superblock{};
  uint64_t usedMeta = 0, dataGen = 0;
  uint64_t journalSeq = 0;  // journal records up to here are in this image
  std::vector<Device> devices;
  std::vector<uint64_t> freed;  // data blocks the image no longer references
};

// Data before metadata, and the state lock held only while the image is
// built: every mapping in the image was made after its data was written (and
// dataGen_ bumped), so one data sync after the build covers all of it; then
// the new metadata blocks, a sync, the superblock, a sync. Writers go on
// meanwhile; what they change after the build goes into the next commit.
void Pool::commit() {
  std::lock_guard c(commitMu_);
  CommitImage img;
  {
    std::lock_guard l(mu_);
    img.dataGen = dataGen_;
    if (!dirty_ && img.dataGen == syncedGen_) return;
    if (dirty_) buildCommit(img);
  }
  if (!img.sink) {  // in-place overwrites only: no metadata change
    syncFd(dataFd_, "data file");
    std::lock_guard l(mu_);
    syncedGen_ = std::max(syncedGen_, img.dataGen);
    return;
  }
  try {
    writeCommit(img);
  } catch (...) {
    std::lock_guard l(mu_);
    // Nothing was adopted: the freed blocks stay pending, the state dirty.
    freedList_.insert(freedList_.end(), img.freed.begin(), img.freed.end());
    dirty_ = true;
    throw;
  }
  // Durable: the journal's records it holds are no longer needed; punch the
  // blocks it stopped referencing (still unallocatable, so no lock is
  // needed), then adopt it.
  if (journal_ && img.journalSeq > journal_->commitSeq.load()) journal_->commitSeq.store(img.journalSeq);
  punchFreed(img.freed);
  std::lock_guard l(mu_);
  adoptCommit(img);
}

void Pool::writeCommit(CommitImage& img) {
  if (img.dataGen != syncedGen_) syncFd(dataFd_, "data file");
  img.sink->flush(metaFd_);
  syncFd(metaFd_, "metadata");
  pwriteAll(metaFd_, img.superblock.data(), kMetaBlock, 0);
  syncFd(metaFd_, "metadata");
}

void Pool::punchFreed(std::vector<uint64_t>& freed) {
  std::sort(freed.begin(), freed.end());
  for (size_t a = 0; a < freed.size();) {
    size_t z = a + 1;
    while (z < freed.size() && freed[z] == freed[z - 1] + 1) z++;
    fallocate(dataFd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(freed[a] * blockBytes_),
              off_t((z - a) * blockBytes_));
    a = z;
  }
}

void Pool::adoptCommit(CommitImage& img) {
  for (uint64_t b = 0; b < nrMeta_; b++) metaCommitted_[b] = img.used[b] > 0;
  usedMeta_ = img.usedMeta;
  syncedGen_ = std::max(syncedGen_, img.dataGen);
  for (auto& cd : img.devices) {
    auto it = devices_.find(cd.id);
    // Changed (or deleted and made anew) since the build: stays dirty.
    if (it == devices_.end() || it->second.changeGen != cd.changeGen || !cd.rewritten) continue;
    it->second.committedNodes = std::move(cd.nodes);
    it->second.committedRoot = cd.root;
    it->second.mappingDirty = false;
  }
  for (uint64_t b : img.freed) {
    pendingFree_[b] = 0;
    hostAllocated_[b] = 0;  // punched
  }
}

void Pool::buildCommit(CommitImage& img) {
  // Metadata reference counts: 1 per node, plus one per extra device whose
  // subtree root is shared (snapshots share their origin's committed tree).
  img.used.assign(nrMeta_, 0);
  std::vector<uint32_t>& used = img.used;
  used[0] = 1;
  for (auto& [id, d] : devices_) {
    if (d.mappingDirty) continue;
    for (uint64_t b : d.committedNodes)
      if (b != d.committedRoot) used[b] = 1;
    used[d.committedRoot]++;
  }
  img.journalSeq = journalHead_.load() - 1;
  img.sink = std::make_unique<CommitSink>(metaCommitted_, used);
  CommitSink& sink = *img.sink;
  // Blocks allocated for writes still in flight are not mapped yet: the
  // image counts them free (they are, as far as its mappings go).
  struct InflightUncounted {
    Pool& p;
    explicit InflightUncounted(Pool& pool) : p(pool) {
      for (uint64_t b : p.inflight_) p.ref_[b]--;
    }
    ~InflightUncounted() {
      for (uint64_t b : p.inflight_) p.ref_[b]++;
    }
  } uncounted(*this);

  // Device mapping subtrees, the top-level mapping tree, the details tree.
  std::vector<uint64_t> ids, keys;
  std::vector<uint8_t> topValues, detailValues, values;
  for (auto& [id, d] : devices_) {
    uint64_t root = d.committedRoot;
    img.devices.push_back(CommitImage::Device{id, d.changeGen, root, d.mappingDirty, {}});
    if (d.mappingDirty) {
      keys.clear();
      values.resize(d.map.size() * 8);
      size_t i = 0;
      d.map.forEach([&](uint64_t vb, const Mapping& m) {
        keys.push_back(vb);
        put64(values.data() + i++ * 8, (m.block << 24) | (m.time & kTimeMask));
      });
      root = writeBtree(sink, keys.data(), values.data(), keys.size(), 8, &img.devices.back().nodes);
      img.devices.back().root = root;
    }
    ids.push_back(id);
    uint8_t v[kDetailsValueSize];
    put64(v, root);
    topValues.insert(topValues.end(), v, v + 8);
    put64(v, d.map.size());
    put64(v + 8, d.transaction);
    put32(v + 16, d.creationTime);
    put32(v + 20, d.snapTime);
    detailValues.insert(detailValues.end(), v, v + kDetailsValueSize);
  }
  uint64_t mappingRoot = writeBtree(sink, ids.data(), topValues.data(), ids.size(), 8);
  uint64_t detailsRoot = writeBtree(sink, ids.data(), detailValues.data(), ids.size(), kDetailsValueSize);

  // Data space map: bitmaps, their index btree, overflow counts (>= 3).
  MetaBlock blk;
  uint64_t nDataBitmaps = std::max<uint64_t>(1, (nrData_ + kEntriesPerBitmap - 1) / kEntriesPerBitmap);
  std::vector<uint64_t> idxKeys;
  std::vector<uint8_t> idxValues;
  auto dataCount = [&](uint64_t b) { return ref_[b]; };
  for (uint64_t i = 0; i < nDataBitmaps; i++) {
    uint64_t self = sink.allocate();
    uint32_t nrFree, noneFreeBefore;
    fillBitmap(blk, self, i * kEntriesPerBitmap, nrData_, dataCount, nrFree, noneFreeBefore);
    sink.emit(self, blk);
    uint8_t e[kIndexEntrySize];
    put64(e, self);
    put32(e + 8, nrFree);
    put32(e + 12, noneFreeBefore);
    idxKeys.push_back(i);
    idxValues.insert(idxValues.end(), e, e + kIndexEntrySize);
  }
  keys.clear();
  values.clear();
  for (uint64_t b = 0; b < nrData_; b++) {
    if (ref_[b] >= 3) {
      keys.push_back(b);
      uint8_t v[4];
      put32(v, ref_[b]);
      values.insert(values.end(), v, v + 4);
    }
  }
  uint64_t dataRefRoot = writeBtree(sink, keys.data(), values.data(), keys.size(), 4);
  uint64_t dataIndexRoot = writeBtree(sink, idxKeys.data(), idxValues.data(), idxKeys.size(), kIndexEntrySize);

  // Metadata space map: allocate its own blocks first, then describe `used`.
  uint64_t nMetaBitmaps = (nrMeta_ + kEntriesPerBitmap - 1) / kEntriesPerBitmap;
  uint64_t metaIndex = sink.allocate();
  std::vector<uint64_t> metaBitmaps;
  for (uint64_t i = 0; i < nMetaBitmaps; i++) metaBitmaps.push_back(sink.allocate());
  // Counts of 3 and more live in the refcount tree; new blocks all count 1.
  keys.clear();
  values.clear();
  for (uint64_t b = 0; b < nrMeta_; b++) {
    if (used[b] >= 3) {
      keys.push_back(b);
      uint8_t v[4];
      put32(v, used[b]);
      values.insert(values.end(), v, v + 4);
    }
  }
  uint64_t metaRefRoot = writeBtree(sink, keys.data(), values.data(), keys.size(), 4);
  MetaBlock index{};
  put64(index.data() + 8, metaIndex);
  auto metaCount = [&](uint64_t b) { return used[b]; };
  for (uint64_t i = 0; i < nMetaBitmaps; i++) {
    uint32_t nrFree, noneFreeBefore;
    fillBitmap(blk, metaBitmaps[i], i * kEntriesPerBitmap, nrMeta_, metaCount, nrFree, noneFreeBefore);
    sink.emit(metaBitmaps[i], blk);
    uint8_t* e = index.data() + 16 + i * kIndexEntrySize;
    put64(e, metaBitmaps[i]);
    put32(e + 8, nrFree);
    put32(e + 12, noneFreeBefore);
  }
  sealBlock(index.data(), kIndexXor);
  sink.emit(metaIndex, index);
  uint64_t usedMeta = uint64_t(std::count_if(used.begin(), used.end(), [](uint32_t c) { return c > 0; }));

  img.usedMeta = usedMeta;

  MetaBlock& sb = img.superblock;
  put64(sb.data() + kSbBlocknr, 0);
  put64(sb.data() + kSbMagic, kMagic);
  put32(sb.data() + kSbVersion, kVersion);
  put32(sb.data() + kSbTime, time_);
  put64(sb.data() + kSbTrans, transaction_);
  put64(sb.data() + kSbHeldRoot, 0);
  put64(sb.data() + kSbDataSm, nrData_);
  put64(sb.data() + kSbDataSm + 8, usedData_ - inflight_.size());
  put64(sb.data() + kSbDataSm + 16, dataIndexRoot);
  put64(sb.data() + kSbDataSm + 24, dataRefRoot);
  put64(sb.data() + kSbMetaSm, nrMeta_);
  put64(sb.data() + kSbMetaSm + 8, usedMeta);
  put64(sb.data() + kSbMetaSm + 16, metaIndex);
  put64(sb.data() + kSbMetaSm + 24, metaRefRoot);
  put64(sb.data() + kSbMappingRoot, mappingRoot);
  put64(sb.data() + kSbDetailsRoot, detailsRoot);
  put32(sb.data() + kSbDataBlockSize, blockBytes_ / 512);
  put32(sb.data() + kSbMetaBlockSize, kMetaBlock / 512);
  put64(sb.data() + kSbMetaNrBlocks, nrMeta_);
  sealBlock(sb.data(), kSuperblockXor);

  // Blocks freed before this build are unreferenced by the image; the ones
  // freed later stay pending for the next commit.
  img.freed.swap(freedList_);
  dirty_ = false;
}

void Pool::format(const std::string& metaPath, const std::string& dataPath, uint32_t blockBytes, uint64_t dataBytes) {
  if (blockBytes < 65536 || blockBytes % 65536 || blockBytes > (1u << 30))
    throw PoolError(EINVAL, "data block size must be a multiple of 64 KiB between 64 KiB and 1 GiB");
  Pool p;
  p.metaFd_ = open(metaPath.c_str(), O_RDWR | O_CLOEXEC);
  if (p.metaFd_ < 0) throw PoolError(errno, "cannot open \"" + metaPath + "\": " + strerror(errno));
  p.dataFd_ = open(dataPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (p.dataFd_ < 0) throw PoolError(errno, "cannot open \"" + dataPath + "\": " + strerror(errno));
  struct stat st;
  fstat(p.metaFd_, &st);
  p.nrMeta_ = std::min<uint64_t>(uint64_t(st.st_size) / kMetaBlock, kMaxMetadataBlocks);
  if (p.nrMeta_ < 64) throw PoolError(EINVAL, "metadata file must hold at least 64 blocks of 4 KiB");
  if (dataBytes && ftruncate(p.dataFd_, off_t(dataBytes)) != 0)
    throw PoolError(errno, std::string("cannot size the data file: ") + strerror(errno));
  fstat(p.dataFd_, &st);
  p.blockBytes_ = blockBytes;
  p.nrData_ = uint64_t(st.st_size) / blockBytes;
  if (p.nrData_ == 0) throw PoolError(EINVAL, "data file holds no whole data block");
  p.ref_.assign(p.nrData_, 0);
  p.pendingFree_.assign(p.nrData_, 0);
  p.hostAllocated_.assign(p.nrData_, 0);
  p.metaCommitted_.assign(p.nrMeta_, 0);
  MetaBlock zero{};
  pwriteAll(p.metaFd_, zero.data(), kMetaBlock, 0);  // no valid superblock until the commit ends
  CommitImage img;
  p.buildCommit(img);
  p.writeCommit(img);
}

}  // namespace tp
