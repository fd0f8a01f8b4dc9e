// TarApply: the tar half of applyLayer, run on the applier's thread. It
// parses the uncompressed layer tar as it arrives and decides what each
// entry means — names cleaned and breakout checks, AUFS or overlay
// whiteouts, the AUFS hardlink store, id maps, which entries may run in
// parallel, directory times at the end — and hands one ApplyOpRec per
// entry to an OpSink (the applier: ApplyFs, or the ApplyPool for
// independent entries). Its rules are written down in src/diff/README.md;
// the oracle engine of the tests (test/oracle/) follows the same rules and
// is compared with this one on random damage (test/diff/engines.test.ts).
//
// Bodies are not copied when they lie inside one input buffer: the op
// points into it, and the applier keeps the buffers until its pool has
// drained. A body of up to 1 MiB cut by a buffer boundary is gathered into
// memory the engine owns until the same point; larger files are streamed
// (BEGIN / WRITE / END ops).
//
// With `record`, the engine also writes the tar-split index records
// (src/archive/tar-split.ts): every byte that is not file content, and the
// name and size of every body.
#pragma once

#include <sys/uio.h>

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "apply/apply_fs.h"
#include "archive/tar_header.h"

namespace strata {

struct IdRange {
  uint32_t container = 0, host = 0, size = 0;
};

struct TarApplyOptions {
  bool overlayWhiteouts = false;  // else AUFS: whiteouts delete
  bool parallel = false;          // the root was empty: independent entries may be flagged
  bool record = false;            // write tar-split records
  std::vector<IdRange> uidMap, gidMap;
};

// Where the engine's ops go. Run returns false when the op failed (the sink keeps the error).
class OpSink {
 public:
  virtual ~OpSink() = default;
  virtual bool Run(std::unique_ptr<ApplyOpRec> op, const struct iovec* bufs) = 0;
};

class TarApply {
 public:
  TarApply(TarApplyOptions opts, OpSink* sink) : opts_(std::move(opts)), sink_(sink) {}
  ~TarApply();
  // Parses and applies one buffer of the archive. Returns false when an op failed;
  // throws TarError for a malformed archive or a refused entry.
  bool Feed(const uint8_t* p, size_t n);
  // The source ended: the archive must be complete; directory times are restored.
  bool Finish();
  // The applier's pool has drained: body memory owned for its ops can go.
  void ReleaseBodies() {
    owned_.clear();
    iovs_.clear();
  }
  // Moves the engine's own warnings since the last call (dropped xattrs) to
  // `out`; returns how many more there were (not kept, to bound memory).
  uint64_t TakeWarnings(std::vector<std::string>& out);
  // Σ of the entries' sizes (Docker's layer size).
  int64_t size() const { return size_; }
  // The tar-split records written since the last call, and how many bodies they name.
  std::string TakeRecords(uint32_t* files);

 private:
  enum class State { kHeader, kMeta, kBody, kPad, kTrailer };
  enum class Body { kSkip, kGather, kStream, kStash };
  struct DirTime {
    std::string rel, name;
    struct timespec atime, mtime;
  };

  bool Header(const uint8_t* block, const uint8_t* p, size_t n, size_t* pos);
  void Meta();
  bool Entry(EntryHeader& h, const uint8_t* p, size_t n, size_t* pos);
  bool BodyBytes(const uint8_t* p, size_t k);
  bool EndBody();
  bool Whiteout(const std::string& parent, const std::string& base, const EntryHeader& h);
  bool Independent(const std::string& rel, bool isDir);
  void PushDir(const std::string& rel, const EntryHeader& h);
  std::unique_ptr<ApplyOpRec> Op(uint32_t op, const EntryHeader& h, const std::string& rel);
  void SetMeta(ApplyOpRec& op, const EntryHeader& h);
  void Dropped(const std::string& name, const std::string& key);
  bool Emit(std::unique_ptr<ApplyOpRec> op, const uint8_t* body, size_t len);
  void StashOpen(const std::string& rel);
  // Non-content bytes, merged into one raw record up to kRawRecord bytes: a
  // long run (bytes after the end marker, thousands of body-less entries)
  // becomes several records, so memory stays bounded by the write size.
  void Raw(const uint8_t* p, size_t n) {
    if (!opts_.record) return;
    pendingRaw_.append(reinterpret_cast<const char*>(p), n);
    if (pendingRaw_.size() >= kRawRecord) FlushRaw();
  }
  static constexpr size_t kRawRecord = 1 << 20;
  void RecordFile(const std::string& name, int64_t size);
  void FlushRaw();

  TarApplyOptions opts_;
  OpSink* sink_;
  State state_ = State::kHeader;
  std::string stage_;  // a header block or PAX / GNU record cut by a buffer boundary
  size_t need_ = 0;    // bytes the stage must reach
  RawHeader metaHeader_;
  PaxRecords pax_;
  std::unique_ptr<std::string> longName_, longLink_;
  // The entry whose body is being read.
  Body body_ = Body::kSkip;
  EntryHeader cur_;
  std::string curRel_;
  int64_t remaining_ = 0, pad_ = 0;
  uint32_t handle_ = 0, nextHandle_ = 1;
  std::string gather_;
  bool gatherParallel_ = false;
  int stashFd_ = -1;
  // Memory ops may point into until ReleaseBodies (deque: elements never move).
  std::deque<std::string> owned_;
  std::deque<struct iovec> iovs_;

  int64_t size_ = 0;
  std::unordered_set<std::string> unpacked_;  // names this layer made (AUFS opaque dirs keep them)
  std::vector<DirTime> dirs_;
  std::unordered_set<std::string> known_, nonDirs_;  // parallel mode
  std::string plnkDir_;
  std::unordered_map<std::string, EntryHeader> plnk_;
  std::string records_, pendingRaw_;
  std::vector<std::string> warnings_;
  uint64_t droppedMore_ = 0;
  uint32_t recordedFiles_ = 0;
};

}  // namespace strata
