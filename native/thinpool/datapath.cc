// The data path: reads, writes (in place, or to a new block with
// copy-on-write) and discards. The state lock is held only to look mappings
// up, allocate and map blocks, never across data I/O.
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io.h"
#include "pool.h"

namespace tp {

namespace {
constexpr uint64_t kPreallocBytes = 16 << 20;  // allocated ahead in the data file per fallocate
thread_local AlignedBuffer tlsRun;    // a run of whole blocks, copied for O_DIRECT
thread_local AlignedBuffer tlsBlock;  // one block assembled for a partial write
}  // namespace

// The stripes of blocks [first, last], taken in index order so that two
// requests can never wait for each other in a cycle.
std::vector<std::unique_lock<std::mutex>> Pool::lockStripes(uint64_t id, uint64_t first, uint64_t last) {
  std::vector<size_t> idx;
  for (uint64_t vb = first; vb <= last && idx.size() < stripes_.size(); vb++)
    idx.push_back(size_t(&stripe(id, vb) - stripes_.data()));
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  std::vector<std::unique_lock<std::mutex>> held;
  held.reserve(idx.size());
  for (size_t i : idx) held.emplace_back(stripes_[i]);
  return held;
}

// Reads `len` bytes at data-file offset `at`: O_DIRECT when aligned (no copy
// through the page cache, which the filesystem above caches anyway).
void Pool::readData(uint8_t* buf, size_t len, uint64_t at) {
  if (dataDirectFd_ >= 0 && directAligned(at, len, buf))
    preadAll(dataDirectFd_, buf, len, at);
  else
    preadAll(dataFd_, buf, len, at);
}

// One lookup for the whole request, then one read per run of data blocks
// that are contiguous in the data file (a sequentially written device reads
// back in requests as large as the caller's).
void Pool::read(uint64_t id, uint64_t off, uint8_t* buf, size_t len) {
  if (len == 0) return;
  std::shared_lock g(gate_);
  uint64_t first = off / blockBytes_, last = (off + len - 1) / blockBytes_;
  auto held = lockStripes(id, first, last);  // no remapping (and reuse) under the read
  std::vector<int64_t> phys(last - first + 1, -1);
  {
    std::lock_guard l(mu_);
    ThinDevice& d = device(id);
    d.map.forRange(first, last, [&](uint64_t vb, const Mapping& m) { phys[vb - first] = int64_t(m.block); });
  }
  uint64_t runStart = 0;  // data file offset of the pending run
  size_t runLen = 0;
  uint8_t* runBuf = nullptr;
  auto flush = [&] {
    if (runLen) readData(runBuf, runLen, runStart);
    runLen = 0;
  };
  while (len) {
    uint64_t vb = off / blockBytes_, bo = off % blockBytes_;
    size_t n = std::min<size_t>(len, blockBytes_ - bo);
    int64_t pb = phys[vb - first];
    if (pb < 0) {
      flush();
      memset(buf, 0, n);
    } else {
      uint64_t at = uint64_t(pb) * blockBytes_ + bo;
      if (runLen && runStart + runLen != at) flush();
      if (!runLen) runStart = at, runBuf = buf;
      runLen += n;
    }
    buf += n, off += n, len -= n;
  }
  flush();
}

void Pool::write(uint64_t id, uint64_t off, const uint8_t* buf, size_t len) {
  if (len == 0) return;
  makeJournalRoom();
  Mutation m(*this);
  std::shared_lock g(gate_);
  writeBlocks(id, off, buf, len);
}

// A request: its blocks' stripes are held throughout; one pass under the
// state lock decides per block where its bytes go (in place when mapped and
// not shared, else a newly allocated block: the request's new blocks are
// consecutive in the data file when free space allows); the data is written
// without the lock, in as few calls as contiguity allows; a second pass maps
// the new blocks, dropping the old references.
void Pool::writeBlocks(uint64_t id, uint64_t off, const uint8_t* buf, size_t len) {
  uint64_t first = off / blockBytes_, last = (off + len - 1) / blockBytes_;
  auto held = lockStripes(id, first, last);
  std::vector<std::pair<uint64_t, uint64_t>> prealloc;
  std::vector<WriteStep> plan = planWrite(id, first, last, off, len, prealloc);
  try {
    preallocate(prealloc);
    writeData(plan, off, buf, len);
  } catch (...) {
    std::lock_guard l(mu_);
    for (auto& s : plan) {
      if (!s.inPlace) {
        ref_[s.target] = 0;
        usedData_--;
        inflight_.erase(s.target);
      }
    }
    throw;
  }
  dataGen_++;
  std::lock_guard l(mu_);
  ThinDevice& d = device(id);
  bool changed = false;
  for (uint64_t vb = first; vb <= last; vb++) {
    const WriteStep& s = plan[vb - first];
    if (s.inPlace) continue;
    inflight_.erase(s.target);
    Mapping old;
    if (d.map.set(vb, Mapping{s.target, time_ & kTimeMask}, &old)) decRef(old.block);
    journal(id, vb, (s.target << 24) | (time_ & kTimeMask));
    changed = true;
  }
  if (changed) mappingChanged(d);
}

// Decides each block's target under the state lock. Out of space, blocks
// freed since the last commit come back after one commit; if that does not
// help, the request fails with ENOSPC having allocated nothing.
std::vector<Pool::WriteStep> Pool::planWrite(uint64_t id, uint64_t first, uint64_t last, uint64_t off, size_t len,
                                             std::vector<std::pair<uint64_t, uint64_t>>& prealloc) {
  for (int attempt = 0;; attempt++) {
    std::unique_lock l(mu_);
    ThinDevice& d = device(id);
    std::vector<WriteStep> plan(last - first + 1);
    size_t planned = 0;
    try {
      for (uint64_t vb = first; vb <= last; vb++, planned++) {
        WriteStep& s = plan[vb - first];
        const Mapping* cur = d.map.find(vb);
        bool mapped = cur != nullptr;
        if (mapped && ref_[cur->block] == 1) {
          s.target = cur->block;
          s.inPlace = true;
          continue;
        }
        s.target = allocateData();
        inflight_.insert(s.target);
        if (!hostAllocated_[s.target] && canPreallocate_) {
          // Ahead of the allocation cursor too: the next requests' blocks.
          uint64_t end = std::min(nrData_, s.target + std::max<uint64_t>(1, kPreallocBytes / blockBytes_));
          for (uint64_t b = s.target; b < end; b++) hostAllocated_[b] = 1;
          prealloc.emplace_back(s.target, end - s.target);
        }
        // A partial write to a mapped (shared) block keeps the block's other bytes.
        uint64_t lo = std::max(off, vb * blockBytes_), hi = std::min(off + len, (vb + 1) * blockBytes_);
        if (mapped && hi - lo < blockBytes_) {
          s.copy = true;
          s.old = cur->block;
        }
      }
      return plan;
    } catch (const PoolError&) {
      prealloc.clear();
      for (size_t i = 0; i < planned; i++) {
        if (!plan[i].inPlace) {
          ref_[plan[i].target] = 0;
          usedData_--;
          inflight_.erase(plan[i].target);
        }
      }
      if (attempt > 0 || freedList_.empty()) {
        outOfDataSpace_ = true;
        throw;
      }
    }
    l.unlock();
    commit();
  }
}

// Allocates new blocks' space in the data file's filesystem before they are
// written (fallocate: unwritten extents, no data I/O). A direct write into a
// hole of a sparse file allocates under the file's exclusive inode lock for
// the whole synchronous write, so concurrent writers queued one behind the
// other; into allocated space they go in parallel (measured: a fresh 1 GiB
// sequential write through ext4 took 3.1 s, 0.8 s with the space allocated).
// Existing data is never touched; a failure only loses the speed-up.
void Pool::preallocate(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  for (auto& [b, n] : ranges) {
    if (fallocate(dataFd_, FALLOC_FL_KEEP_SIZE, off_t(b * blockBytes_), off_t(n * blockBytes_)) != 0 &&
        errno == EOPNOTSUPP)
      canPreallocate_ = false;
  }
}

// Writes the request's bytes: runs of whole blocks consecutive in the data
// file go out as one O_DIRECT write (no page-cache writeback of fresh blocks
// of a sparse file, which ran far slower here); partial writes in place are
// buffered (also merged when contiguous); a partial write to a new block
// writes the whole block: zeros, or the old block's bytes (copy-on-write),
// around the new ones.
void Pool::writeData(const std::vector<WriteStep>& plan, uint64_t off, const uint8_t* buf, size_t len) {
  enum Kind { kNone, kDirect, kBuffered } kind = kNone;
  uint64_t runAt = 0;  // data file offset of the pending run
  const uint8_t* runSrc = nullptr;
  size_t runLen = 0;
  auto flush = [&] {
    if (kind == kDirect) {
      uint8_t* a = reinterpret_cast<uintptr_t>(runSrc) % kDirectAlign ? tlsRun.get(runLen) : nullptr;
      if (a) memcpy(a, runSrc, runLen);
      pwriteAll(dataDirectFd_, a ? a : runSrc, runLen, runAt);
    } else if (kind == kBuffered) {
      pwriteAll(dataFd_, runSrc, runLen, runAt);
    }
    kind = kNone;
    runLen = 0;
  };
  uint64_t first = off / blockBytes_;
  while (len) {
    uint64_t vb = off / blockBytes_, bo = off % blockBytes_;
    size_t n = std::min<size_t>(len, blockBytes_ - bo);
    const WriteStep& s = plan[vb - first];
    uint64_t at = s.target * blockBytes_ + bo;
    bool whole = n == blockBytes_;
    if (whole || s.inPlace) {
      Kind k = whole && dataDirectFd_ >= 0 ? kDirect : kBuffered;
      if (kind != k || runAt + runLen != at) flush();
      if (kind == kNone) kind = k, runAt = at, runSrc = buf;
      runLen += n;
    } else {
      flush();
      uint8_t* blk = tlsBlock.get(blockBytes_);
      if (s.copy)
        readData(blk, blockBytes_, s.old * blockBytes_);
      else
        memset(blk, 0, blockBytes_);
      memcpy(blk + bo, buf, n);
      pwriteAll(dataDirectFd_ >= 0 ? dataDirectFd_ : dataFd_, blk, blockBytes_, s.target * blockBytes_);
    }
    buf += n, off += n, len -= n;
  }
  flush();
}

void Pool::unmapBlock(uint64_t id, uint64_t vb) {
  std::lock_guard s(stripe(id, vb));
  std::lock_guard l(mu_);
  ThinDevice& d = device(id);
  Mapping old;
  if (!d.map.erase(vb, &old)) return;
  decRef(old.block);
  journal(id, vb, kUnmapRecord);
  mappingChanged(d);
}

void Pool::zeroRange(uint64_t id, uint64_t off, size_t len) {
  {
    std::lock_guard l(mu_);
    ThinDevice& d = device(id);
    if (!d.map.find(off / blockBytes_)) return;  // unmapped reads as zeros already
  }
  std::vector<uint8_t> zeros(len, 0);
  writeBlocks(id, off, zeros.data(), len);
}

void Pool::discard(uint64_t id, uint64_t off, uint64_t len) {
  makeJournalRoom();
  Mutation m(*this);
  std::shared_lock g(gate_);
  uint64_t end = off + len;
  while (off < end) {
    uint64_t vb = off / blockBytes_, bo = off % blockBytes_;
    uint64_t n = std::min<uint64_t>(end - off, blockBytes_ - bo);
    if (n == blockBytes_)
      unmapBlock(id, vb);
    else
      zeroRange(id, off, size_t(n));
    off += n;
  }
}

// The journal (see shared.h): one record per mapping change, published by
// its seq, which is stored last; a record is valid at its slot only with the
// seq expected there, so a torn or stale slot ends the replay.
void Pool::journal(uint64_t dev, uint64_t vb, uint64_t blockTime) {
  if (!journal_) return;
  uint64_t seq = journalHead_.load();
  JournalRecord& r = journal_->journal[seq % kJournalRecords];
  r.dev = dev;
  r.vblock = vb;
  r.blockTime = blockTime;
  r.seq.store(seq, std::memory_order_release);
  journalHead_.store(seq + 1);
}

void Pool::makeJournalRoom() {
  if (journal_ && journalHead_.load() - journal_->commitSeq.load() > kJournalRecords / 2) commit();
}

bool Pool::attachJournal(SharedState* state) {
  std::lock_guard l(mu_);
  uint64_t seq = state->commitSeq.load() + 1;
  for (;; seq++) {
    const JournalRecord& r = state->journal[seq % kJournalRecords];
    if (r.seq.load(std::memory_order_acquire) != seq) break;
    replay(r);
  }
  journal_ = state;
  journalHead_.store(seq);
  return seq != state->commitSeq.load() + 1;
}

// Applies one record to the pool as loaded from its last commit: the blocks
// it maps were free there (allocated after that commit), the blocks it drops
// become free once the next commit is durable.
void Pool::replay(const JournalRecord& r) {
  auto it = devices_.find(r.dev);
  if (it == devices_.end()) return;  // deleted since (that delete was committed)
  ThinDevice& d = it->second;
  Mapping old;
  if (r.blockTime == kUnmapRecord) {
    if (!d.map.erase(r.vblock, &old)) return;
    decRef(old.block);
  } else {
    uint64_t block = r.blockTime >> 24;
    if (block >= nrData_) return;
    bool was = d.map.set(r.vblock, Mapping{block, uint32_t(r.blockTime & kTimeMask)}, &old);
    if (was && old.block == block) return;
    if (ref_[block]++ == 0) usedData_++;
    if (pendingFree_[block]) {
      // Records the loaded commit already holds, replayed again (the daemon died
      // between writing that commit and noting it): a block an earlier record
      // dropped is mapped again by a later one, so it must not be freed.
      pendingFree_[block] = 0;
      freedList_.erase(std::remove(freedList_.begin(), freedList_.end(), block), freedList_.end());
    }
    if (was) decRef(old.block);
  }
  mappingChanged(d);
}

}  // namespace tp
