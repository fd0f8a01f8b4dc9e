// Opening a pool, the messages and the status. datapath.cc serves reads and
// writes; commit.cc writes metadata.
#include "pool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "io.h"

namespace tp {

namespace {
int openFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw PoolError(errno, "cannot open \"" + path + "\": " + strerror(errno));
  return fd;
}
uint64_t fileSize(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) throw PoolError(errno, std::string("fstat failed: ") + strerror(errno));
  return uint64_t(st.st_size);
}
}  // namespace

Pool::Pool(const std::string& metaPath, const std::string& dataPath) {
  metaFd_ = openFile(metaPath);
  try {
    dataFd_ = openFile(dataPath);
    // Whole blocks bypass the page cache (measured here: much faster than
    // buffered writeback for fresh blocks of a sparse file); partial writes
    // stay buffered. Linux keeps the two coherent within one file.
    dataDirectFd_ = open(dataPath.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
    load();
  } catch (...) {
    close(metaFd_);
    if (dataFd_ >= 0) close(dataFd_);
    if (dataDirectFd_ >= 0) close(dataDirectFd_);
    throw;
  }
}

Pool::~Pool() {
  if (metaFd_ >= 0) close(metaFd_);
  if (dataFd_ >= 0) close(dataFd_);
  if (dataDirectFd_ >= 0) close(dataDirectFd_);
}

// Reads the committed metadata: every structure is walked so that the set of
// blocks it occupies is known (new commits must not overwrite them) and the
// data reference counts are rebuilt from the mappings themselves.
void Pool::load() {
  uint64_t fileBlocks = fileSize(metaFd_) / kMetaBlock;
  MetaReader probe(metaFd_, fileBlocks);
  MetaBlock sb;
  probe.read(0, kSuperblockXor, sb, "superblock");
  if (get64(sb.data() + kSbMagic) != kMagic) throw FormatError("not dm-thin metadata (bad magic)");
  uint32_t version = get32(sb.data() + kSbVersion);
  if (version < 1 || version > 2) throw FormatError("unsupported metadata version " + std::to_string(version));
  if (get64(sb.data() + kSbHeldRoot) != 0) throw FormatError("metadata has a held root (metadata snapshot)");
  nrMeta_ = get64(sb.data() + kSbMetaNrBlocks);
  if (nrMeta_ == 0 || nrMeta_ > fileBlocks) throw FormatError("metadata file is smaller than the superblock says");
  uint32_t sectors = get32(sb.data() + kSbDataBlockSize);
  if (sectors == 0 || sectors % 8) throw FormatError("bad data block size " + std::to_string(sectors));
  blockBytes_ = sectors * 512;
  time_ = get32(sb.data() + kSbTime);
  transaction_ = get64(sb.data() + kSbTrans);
  const uint8_t* dsm = sb.data() + kSbDataSm;
  const uint8_t* msm = sb.data() + kSbMetaSm;
  nrData_ = get64(dsm);
  ref_.assign(nrData_, 0);
  pendingFree_.assign(nrData_, 0);
  hostAllocated_.assign(nrData_, 0);
  metaCommitted_.assign(nrMeta_, 0);
  metaCommitted_[0] = 1;
  MetaReader rd(metaFd_, nrMeta_);
  bool shared = false;
  auto mark = [&](uint64_t b) {
    if (b >= nrMeta_) throw FormatError("metadata block " + std::to_string(b) + " out of range");
    if (metaCommitted_[b]) shared = true;
    metaCommitted_[b] = 1;
    return true;
  };
  auto noEntry = [](uint64_t, const uint8_t*) {};

  walkBtree(rd, get64(sb.data() + kSbDetailsRoot), kDetailsValueSize, mark, [&](uint64_t id, const uint8_t* v) {
    ThinDevice& d = devices_[id];
    d.transaction = get64(v + 8);
    d.creationTime = get32(v + 16);
    d.snapTime = get32(v + 20);
  });
  std::vector<std::pair<uint64_t, uint64_t>> roots;
  walkBtree(rd, get64(sb.data() + kSbMappingRoot), 8, mark,
            [&](uint64_t id, const uint8_t* v) { roots.emplace_back(id, get64(v)); });
  std::map<uint64_t, uint64_t> rootOwner;  // subtree root -> first device using it
  for (auto& [id, root] : roots) {
    auto it = devices_.find(id);
    if (it == devices_.end()) throw FormatError("mapping tree names device " + std::to_string(id) + " without details");
    ThinDevice& d = it->second;
    d.committedRoot = root;
    d.mappingDirty = false;
    // A snapshot whose whole subtree is another device's keeps sharing it.
    auto owner = rootOwner.find(root);
    if (owner != rootOwner.end()) {  // same tree: share the loaded mapping's chunks too
      ThinDevice& o = devices_[owner->second];
      d.committedNodes = o.committedNodes;
      d.map = o.map;
      d.map.forEach([&](uint64_t, const Mapping& m) { ref_[m.block]++; });
      continue;
    }
    rootOwner[root] = id;
    walkBtree(
        rd, root, 8,
        [&](uint64_t b) {
          mark(b);
          d.committedNodes.push_back(b);
          return true;
        },
        [&](uint64_t vb, const uint8_t* v) {
          uint64_t raw = get64(v), block = raw >> 24;
          if (block >= nrData_) throw FormatError("mapping to data block " + std::to_string(block) + " out of range");
          d.map.set(vb, Mapping{block, uint32_t(raw & kTimeMask)});
          ref_[block]++;
        });
  }
  // Data space map: index btree, its bitmaps, the overflow reference counts.
  walkBtree(rd, get64(dsm + 16), kIndexEntrySize, mark, [&](uint64_t, const uint8_t* v) { mark(get64(v)); });
  walkBtree(rd, get64(dsm + 24), 4, mark, noEntry);
  // Metadata space map: one index block, its bitmaps, the overflow counts.
  MetaBlock idx;
  uint64_t idxBlock = get64(msm + 16);
  rd.read(idxBlock, kIndexXor, idx, "metadata space map index");
  mark(idxBlock);
  uint64_t nBitmaps = (nrMeta_ + kEntriesPerBitmap - 1) / kEntriesPerBitmap;
  if (nBitmaps > kMaxMetadataBitmaps) throw FormatError("metadata device too large");
  for (uint64_t i = 0; i < nBitmaps; i++) mark(get64(idx.data() + 16 + i * kIndexEntrySize));
  walkBtree(rd, get64(msm + 24), 4, mark, noEntry);

  // Shared nodes (kernel-made pools share subtrees between snapshots): the
  // first commit rewrites every device so that no node is shared afterwards.
  for (auto& [id, d] : devices_) {
    if (shared || d.committedNodes.empty()) {
      d.mappingDirty = true;
      dirty_ = true;
    }
  }
  usedMeta_ = uint64_t(std::count(metaCommitted_.begin(), metaCommitted_.end(), 1));
  usedData_ = uint64_t(std::count_if(ref_.begin(), ref_.end(), [](uint32_t r) { return r > 0; }));
  if (fileSize(dataFd_) < nrData_ * blockBytes_ && ftruncate(dataFd_, off_t(nrData_ * blockBytes_)) != 0)
    throw PoolError(errno, std::string("cannot extend the data file: ") + strerror(errno));
}

ThinDevice& Pool::device(uint64_t id) {
  auto it = devices_.find(id);
  if (it == devices_.end()) throw PoolError(ENODEV, "no thin device " + std::to_string(id));
  return it->second;
}

bool Pool::hasDevice(uint64_t id) {
  std::lock_guard l(mu_);
  return devices_.count(id) > 0;
}

uint64_t Pool::allocateData() {
  for (uint64_t i = 0; i < nrData_; i++) {
    uint64_t b = (dataCursor_ + i) % nrData_;
    if (!ref_[b] && !pendingFree_[b]) {
      ref_[b] = 1;
      usedData_++;
      dataCursor_ = b + 1;
      return b;
    }
  }
  throw PoolError(ENOSPC, "out of data space");
}

void Pool::decRef(uint64_t b) {
  if (--ref_[b] == 0) {
    usedData_--;
    pendingFree_[b] = 1;
    freedList_.push_back(b);
  }
}

void Pool::createThin(uint64_t id) {
  Mutation m(*this);
  if (id > kMaxDevId) throw PoolError(EINVAL, "device id " + std::to_string(id) + " is not 24-bit");
  {
    std::lock_guard l(mu_);
    if (devices_.count(id)) throw PoolError(EEXIST, "thin device " + std::to_string(id) + " already exists");
    ThinDevice& d = devices_[id];
    d.transaction = transaction_;
    d.creationTime = d.snapTime = time_;
    mappingChanged(d);
  }
  commit();
}

void Pool::createSnap(uint64_t id, uint64_t origin) {
  Mutation m(*this);
  if (id > kMaxDevId) throw PoolError(EINVAL, "device id " + std::to_string(id) + " is not 24-bit");
  {
    std::unique_lock g(gate_);  // quiesce I/O so the origin is stable
    std::lock_guard l(mu_);
    if (devices_.count(id)) throw PoolError(EEXIST, "thin device " + std::to_string(id) + " already exists");
    ThinDevice& o = device(origin);
    time_ = (time_ + 1) & kTimeMask;
    ThinDevice s;
    s.map = o.map;  // shares o's chunks until either side changes one
    s.map.forEach([&](uint64_t, const Mapping& m) { ref_[m.block]++; });
    if (!o.mappingDirty) {
      // Same mapping as the origin's committed subtree: share it, as the
      // kernel does (the root's metadata reference count becomes 2).
      s.committedRoot = o.committedRoot;
      s.committedNodes = o.committedNodes;
      s.mappingDirty = false;
    }
    s.changeGen = ++changeCounter_;
    s.transaction = transaction_;
    s.creationTime = s.snapTime = time_;
    o.snapTime = time_;
    devices_.emplace(id, std::move(s));
    dirty_ = true;
  }
  commit();
}

void Pool::deleteDevice(uint64_t id) {
  Mutation m(*this);
  {
    std::unique_lock g(gate_);
    std::lock_guard l(mu_);
    ThinDevice& d = device(id);
    d.map.forEach([&](uint64_t, const Mapping& m) { decRef(m.block); });
    devices_.erase(id);
    dirty_ = true;
  }
  commit();
}

void Pool::setTransactionId(uint64_t oldId, uint64_t newId) {
  {
    std::lock_guard l(mu_);
    if (oldId != transaction_)
      throw PoolError(EINVAL, "transaction id is " + std::to_string(transaction_) + ", not " + std::to_string(oldId));
    transaction_ = newId;
    dirty_ = true;
  }
  commit();
}

void Pool::grow(uint64_t nrBlocks) {
  {
    std::lock_guard l(mu_);
    if (nrBlocks < nrData_) throw PoolError(EINVAL, "a pool cannot shrink");
    if (nrBlocks == nrData_) return;
    if (ftruncate(dataFd_, off_t(nrBlocks * blockBytes_)) != 0)
      throw PoolError(errno, std::string("cannot extend the data file: ") + strerror(errno));
    nrData_ = nrBlocks;
    ref_.resize(nrData_, 0);
    pendingFree_.resize(nrData_, 0);
    hostAllocated_.resize(nrData_, 0);
    outOfDataSpace_ = false;
    dirty_ = true;
  }
  commit();
}

void Pool::growMetadata(uint64_t nrBlocks) {
  {
    // commitMu_ first: a commit in progress sized its image by the old count.
    std::lock_guard c(commitMu_);
    std::lock_guard l(mu_);
    nrBlocks = std::min<uint64_t>(nrBlocks, kMaxMetadataBlocks);
    if (nrBlocks <= nrMeta_) return;  // never shrinks; at the format's limit already
    if (fileSize(metaFd_) < nrBlocks * kMetaBlock && ftruncate(metaFd_, off_t(nrBlocks * kMetaBlock)) != 0)
      throw PoolError(errno, std::string("cannot extend the metadata file: ") + strerror(errno));
    nrMeta_ = nrBlocks;
    metaCommitted_.resize(nrMeta_, 0);
    dirty_ = true;
  }
  commit();
}

PoolStatus Pool::status() {
  std::lock_guard l(mu_);
  return PoolStatus{transaction_, usedMeta_, nrMeta_, usedData_, nrData_, time_, blockBytes_ / 512,
                    outOfDataSpace_, false};
}

std::string Pool::statusLine() {
  PoolStatus s = status();
  uint64_t lowWater = std::min<uint64_t>(1024, s.nrMeta / 4);
  std::ostringstream o;
  o << s.transaction << ' ' << s.usedMeta << '/' << s.nrMeta << ' ' << s.usedData << '/' << s.nrData << " - "
    << (s.outOfDataSpace ? "out_of_data_space" : "rw") << " discard_passdown error_if_no_space "
    << (s.needsCheck ? "needs_check" : "-") << ' ' << lowWater;
  return o.str();
}

std::string Pool::infoJson() {
  std::lock_guard l(mu_);
  std::ostringstream o;
  o << "{\"transaction\":" << transaction_ << ",\"time\":" << time_ << ",\"dataBlockSize\":" << blockBytes_
    << ",\"nrDataBlocks\":" << nrData_ << ",\"usedDataBlocks\":" << usedData_ << ",\"nrMetadataBlocks\":" << nrMeta_
    << ",\"usedMetadataBlocks\":" << usedMeta_ << ",\"devices\":[";
  bool first = true;
  for (auto& [id, d] : devices_) {
    if (!first) o << ',';
    first = false;
    uint64_t exclusive = 0;
    d.map.forEach([&](uint64_t, const Mapping& m) { exclusive += ref_[m.block] == 1; });
    o << "{\"id\":" << id << ",\"mappedBlocks\":" << d.map.size() << ",\"exclusiveBlocks\":" << exclusive
      << ",\"transaction\":" << d.transaction << ",\"creationTime\":" << d.creationTime
      << ",\"snapTime\":" << d.snapTime << "}";
  }
  o << "]}";
  return o.str();
}

}  // namespace tp
