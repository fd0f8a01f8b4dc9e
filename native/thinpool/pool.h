// The pool engine: thin devices mapping virtual blocks to data blocks with
// reference counts, copy-on-write, discard, and crash-safe commits of the
// whole state into dm-thin format metadata. See README.md, "Theory of operation".
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "blockmap.h"
#include "btree.h"
#include "shared.h"

namespace tp {

/** A failure with an errno meant for the caller (ENOSPC, EEXIST, ...). */
struct PoolError : std::runtime_error {
  int err;
  PoolError(int e, const std::string& msg) : std::runtime_error(msg), err(e) {}
};

/** A thin device: its details row and its mapping. */
struct ThinDevice {
  uint64_t transaction = 0;
  uint32_t creationTime = 0, snapTime = 0;
  BlockMap map;
  // Committed subtree blocks while the mapping is unchanged since the last
  // commit (reused as-is); cleared when the mapping changes.
  bool mappingDirty = true;
  std::vector<uint64_t> committedNodes;
  uint64_t committedRoot = 0;
  // Pool-wide change counter as of the last change to this device's mapping
  // (or its creation): a commit built before that change cannot clean it.
  uint64_t changeGen = 0;
};

/** Figures for the status line and the control socket's `info`. */
struct PoolStatus {
  uint64_t transaction, usedMeta, nrMeta, usedData, nrData;
  uint32_t time, dataBlockSectors;
  bool outOfDataSpace, needsCheck;
};

class Pool {
 public:
  /** Writes fresh, empty metadata (the file must exist; its size sets the metadata capacity). */
  static void format(const std::string& metaPath, const std::string& dataPath, uint32_t blockBytes,
                     uint64_t dataBytes);
  /** Opens a pool: reads the committed metadata into memory. */
  Pool(const std::string& metaPath, const std::string& dataPath);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Messages of the thin-pool target; each commits before returning.
  void createThin(uint64_t id);
  void createSnap(uint64_t id, uint64_t origin);
  void deleteDevice(uint64_t id);
  void setTransactionId(uint64_t oldId, uint64_t newId);
  /** Grows the data file to `nrBlocks` data blocks. */
  void grow(uint64_t nrBlocks);
  /** Grows the metadata file to `nrBlocks` 4 KiB blocks (capped at the format's limit; never shrinks). */
  void growMetadata(uint64_t nrBlocks);

  // The data path. Offsets and lengths in bytes within device `id`.
  void read(uint64_t id, uint64_t off, uint8_t* buf, size_t len);
  void write(uint64_t id, uint64_t off, const uint8_t* buf, size_t len);
  /** Unmaps whole blocks in the range, zeroes partial ones. */
  void discard(uint64_t id, uint64_t off, uint64_t len);
  /** Makes everything written so far durable (data, then metadata). No-op when nothing changed. */
  void commit();
  /**
   * Journals every mapping change into `state` from now on (see shared.h),
   * after replaying what it holds beyond its last commit onto the pool as
   * loaded (a daemon taking over from one that died). Call before serving;
   * commit afterwards when it returns true (something was replayed).
   */
  bool attachJournal(SharedState* state);
  bool dirty() const { return dirty_.load(); }

  /**
   * Counts of mutations (writes, discards, messages) begun and finished:
   * a reader that copied data while `mutationsBegun()` did not move, and no
   * mutation was in flight when it started, holds what the devices hold.
   */
  uint64_t mutationsBegun() const { return mutationsBegun_.load(); }
  uint64_t mutationsDone() const { return mutationsDone_.load(); }

  bool hasDevice(uint64_t id);
  uint32_t blockBytes() const { return blockBytes_; }
  PoolStatus status();
  /** The kernel thin-pool status line. */
  std::string statusLine();
  /** A JSON object describing the pool and its devices. */
  std::string infoJson();

 private:
  Pool() = default;  // for format()
  /** Where one virtual block's bytes of a write go. */
  struct WriteStep {
    uint64_t target = 0;  // data block written
    uint64_t old = 0;     // block whose other bytes are kept (copy)
    bool inPlace = false, copy = false;
  };
  struct CommitImage;  // a commit built under mu_ and written without it (commit.cc)

  void load();
  std::vector<std::unique_lock<std::mutex>> lockStripes(uint64_t id, uint64_t first, uint64_t last);
  void readData(uint8_t* buf, size_t len, uint64_t at);
  void writeBlocks(uint64_t id, uint64_t off, const uint8_t* buf, size_t len);
  std::vector<WriteStep> planWrite(uint64_t id, uint64_t first, uint64_t last, uint64_t off, size_t len,
                                   std::vector<std::pair<uint64_t, uint64_t>>& prealloc);
  void preallocate(const std::vector<std::pair<uint64_t, uint64_t>>& ranges);
  void writeData(const std::vector<WriteStep>& plan, uint64_t off, const uint8_t* buf, size_t len);
  void journal(uint64_t dev, uint64_t vb, uint64_t blockTime);  // with mu_ held
  void replay(const JournalRecord& r);                           // with mu_ held
  void makeJournalRoom();                                        // without locks: commits when half full
  void mappingChanged(ThinDevice& d) {  // with mu_ held
    d.mappingDirty = true;
    d.changeGen = ++changeCounter_;
    dirty_ = true;
  }
  void buildCommit(CommitImage& img);    // with mu_ held
  void writeCommit(CommitImage& img);    // without mu_: data sync, metadata blocks, superblock
  void adoptCommit(CommitImage& img);    // with mu_ held, once the commit is durable
  void punchFreed(std::vector<uint64_t>& freed);  // holes where freed blocks were (sparse data file)
  uint64_t allocateData();        // with mu_ held; throws ENOSPC
  void decRef(uint64_t b);        // with mu_ held
  ThinDevice& device(uint64_t id);  // with mu_ held; throws ENODEV
  std::mutex& stripe(uint64_t id, uint64_t vb) { return stripes_[(id * 2654435761u + vb) % stripes_.size()]; }
  void unmapBlock(uint64_t id, uint64_t vb);
  void zeroRange(uint64_t id, uint64_t off, size_t len);

  int metaFd_ = -1, dataFd_ = -1;
  int dataDirectFd_ = -1;  // O_DIRECT, for whole-block writes; -1 when unsupported
  uint32_t blockBytes_ = 0;
  uint64_t nrMeta_ = 0, nrData_ = 0;
  uint64_t transaction_ = 0;
  uint32_t time_ = 0;
  std::map<uint64_t, ThinDevice> devices_;
  std::vector<uint32_t> ref_;          // data block reference counts
  std::vector<uint8_t> pendingFree_;   // freed since the last commit: not reusable yet
  // Data blocks known to be allocated in the data file's filesystem (a hint:
  // see Pool::preallocate); cleared when a block is punched.
  std::vector<uint8_t> hostAllocated_;
  std::atomic<bool> canPreallocate_{true};  // false once fallocate says EOPNOTSUPP
  std::vector<uint64_t> freedList_;    // same blocks, to punch after the commit
  std::unordered_set<uint64_t> inflight_;  // allocated for writes not yet mapped
  uint64_t usedData_ = 0, dataCursor_ = 0;
  std::vector<uint8_t> metaCommitted_;  // blocks of the committed metadata
  uint64_t usedMeta_ = 0;
  bool outOfDataSpace_ = false;
  std::atomic<bool> dirty_{false};
  std::atomic<uint64_t> dataGen_{0};  // bumped after every data write
  uint64_t syncedGen_ = 0;            // dataGen_ as of the last data sync
  uint64_t changeCounter_ = 0;        // see ThinDevice::changeGen
  std::atomic<uint64_t> mutationsBegun_{0}, mutationsDone_{0};  // see mutationsBegun()
  SharedState* journal_ = nullptr;           // see attachJournal()
  std::atomic<uint64_t> journalHead_{1};     // seq of the next record
  /** Counts one mutation for its scope (see mutationsBegun()). */
  struct Mutation {
    Pool& p;
    explicit Mutation(Pool& pool) : p(pool) { p.mutationsBegun_++; }
    ~Mutation() { p.mutationsDone_++; }
  };

  std::mutex mu_;             // all in-memory state; never held across I/O on the data path
  std::mutex commitMu_;       // one commit at a time (held across its I/O)
  std::shared_mutex gate_;    // data I/O shared; snapshot/delete exclusive (quiesce)
  std::array<std::mutex, 1024> stripes_;  // one writer per virtual block
};

}  // namespace tp
