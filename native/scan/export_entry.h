// The filesystem side of export, shared by exportScan (named entries of one
// directory) and the ExportWalker (a whole tree, depth first): describe an
// entry relative to a directory fd — lstat, security.capability, the overlay
// opaque flag, the link target, and the content of small regular files.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "addon/common.h"
#include "sys/dir_at.h"

namespace strata {

// Fields per entry in the packed stat array (see EXPORT in src/native.ts).
constexpr int kExportFields = kStatFields + 2;  // PackStat's fields, then dev and dataOffset

struct ExportEntry {
  std::string name;  // as returned to JavaScript (a base name, or a path for the walker)
  std::string link;
  std::vector<char> cap;
  bool hasCap = false;
  bool opaque = false;
};

struct ExportOptions {
  bool opaque;       // read trusted.overlay.opaque of directories
  size_t inlineMax;  // read regular files up to this size ...
};

struct ExportBatch {
  bool missing = false;  // exportScan: the directory itself is gone
  bool done = false;     // walker: nothing left after this batch
  std::vector<ExportEntry> entries;
  std::vector<double> stats;  // kExportFields per entry; NaN mode = vanished
  std::unique_ptr<std::vector<char>> data = std::make_unique<std::vector<char>>();
};

// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) of a directory for reading.
int OpenDirInRoot(int root, const std::string& rel);

// Names of directory fd `dirfd` ("." and ".." left out), byte-sorted, appended to `out`.
bool ListSorted(int dirfd, const std::string& rel, std::vector<ExportEntry>& out, SysError& e);

// Fills `f` (kExportFields) for `base` in `dirfd`; inlines a small file's
// content into `data` while `budget` (decremented) lasts.
void DescribeEntry(int dirfd, const std::string& base, ExportEntry& ent, double* f, const ExportOptions& o,
                   std::vector<char>& data, size_t& budget);

// The batch as a JS object {missing, done, names, stats, caps, links, opaque, data}.
Napi::Object ExportBatchToJs(Napi::Env env, ExportBatch& batch);


}  // namespace strata
