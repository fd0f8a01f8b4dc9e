// The filesystem half of applyLayer, run on the applier's own thread.
//
// TarApply (tar_apply.h) parses the tar and decides what each entry means
// (whiteouts, ids, breakout checks), one op per entry; ApplyFs executes the
// ops in order. Containment: every parent is resolved with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS) relative to the root fd, and every operation acts
// on one name inside such a contained directory fd.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "addon/common.h"

namespace strata {

// Op codes and entry kinds (mirrored in the oracle's batch format, test/oracle/batch.ts).
enum ApplyOp : uint32_t {
  kOpEntry = 1,           // create one entry (kind below) and set its metadata
  kOpBegin = 2,           // create a regular file and keep its fd under `handle` (streamed body)
  kOpWrite = 3,           // append body buffers to the file under `handle`
  kOpEnd = 4,             // set the metadata of the file under `handle` and close it
  kOpWhiteoutAufs = 5,    // remove parent/base if the parent exists
  kOpWhiteoutOverlay = 6, // replace parent/base by a char 0/0 device owned by uid:gid
  kOpOpaqueOverlay = 7,   // set trusted.overlay.opaque=y on the directory parent
  kOpOpaqueAufs = 8,      // empty the directory parent except the `keep` paths
  kOpDirTime = 9,         // restore a directory's times; ENOENT/ENOTDIR ignored
};

enum ApplyKind : uint32_t {
  kKindDir = 1,
  kKindFile = 2,
  kKindSymlink = 3,
  kKindLink = 4,
  kKindChar = 5,
  kKindBlock = 6,
  kKindFifo = 7,
  kKindRoot = 8,  // the layer root's own header (metadata only)
  kKindPlnk = 9,  // a name made from an AUFS .wh..wh.plnk body: link1 = its key, link2 = the stashed copy
};

struct Xattr {
  std::string key;
  std::string value;
};

// One decoded op. Strings are relative paths inside the root ("" = root).
struct ApplyOpRec {
  uint32_t op = 0, kind = 0, mode = 0, uid = 0, gid = 0, major = 0, minor = 0, handle = 0, nbufs = 0;
  struct timespec times[2] = {};  // atime, mtime
  std::string name;               // the entry's name in the archive, for messages
  std::string parent, base;       // where the entry goes
  std::string link1, link2;       // symlink target; hardlink target's parent and base
  std::vector<Xattr> xattrs;
  std::vector<std::string> keep;  // kOpOpaqueAufs: paths created by this layer; kKindLink: [raw link name]
};

class ApplyFs {
 public:
  explicit ApplyFs(int rootFd) : root_(rootFd) {}
  ~ApplyFs();
  // Executes one op; `bufs` are its body buffers. Non-fatal xattr failures go to `warnings`.
  bool Run(const ApplyOpRec& op, const struct iovec* bufs, SysError& e, std::vector<std::string>& warnings);
  // How many RemoveAll calls ran: a change means other threads' cached dir fds may be stale.
  uint64_t removals() const { return removals_; }
  // Closes every cached directory fd.
  void ForgetDirs() {
    DropCache();
    for (int fd : dropped_) close(fd);
    dropped_.clear();
  }

 private:
  int Dir(const std::string& rel, bool create, SysError& e);
  bool RemoveAll(int parent, const std::string& name, SysError& e);
  bool RemoveTree(int dirfd, const std::string& name, SysError& e);
  void DropCache();
  bool Entry(const ApplyOpRec& op, const struct iovec* bufs, SysError& e, std::vector<std::string>& w);
  bool CreateFile(int parent, const ApplyOpRec& op, int* fd, SysError& e);
  bool WriteAll(int fd, const struct iovec* bufs, uint32_t n, const ApplyOpRec& op, SysError& e);
  bool FinishFd(int fd, const ApplyOpRec& op, SysError& e, std::vector<std::string>& w);
  bool FinishAt(int parent, const ApplyOpRec& op, bool symlink, SysError& e, std::vector<std::string>& w,
                bool keepOwner = false);
  bool ReplaceExisting(int parent, const ApplyOpRec& op, SysError& e);
  bool Hardlink(int parent, const ApplyOpRec& op, SysError& e, std::vector<std::string>& w);
  bool Plnk(int parent, const ApplyOpRec& op, SysError& e, std::vector<std::string>& w);
  bool FinishRoot(const ApplyOpRec& op, SysError& e, std::vector<std::string>& w);
  bool RemoveNotUnpacked(const std::string& dirRel, const std::unordered_set<std::string>& keep, SysError& e);
  bool DirTime(const ApplyOpRec& op, SysError& e);

  int root_;
  std::unordered_map<std::string, int> dirs_;  // O_PATH fds of resolved directories
  std::vector<int> dropped_;                   // evicted fds, closed after the current op
  std::unordered_map<uint32_t, int> files_;    // open streamed files by handle
  uint64_t removals_ = 0;
  std::unordered_map<std::string, std::string> plnkFirst_;  // plnk key -> first name made from it
};

}  // namespace strata
