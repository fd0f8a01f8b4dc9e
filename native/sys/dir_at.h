// Reading through a directory fd, shared by the changes scanner and the
// export scanner: its names, an xattr of a name without following symlinks,
// and lstat results packed as numbers for JavaScript.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <string>

#include "addon/common.h"

namespace strata {

// getxattrat(2) on Linux 6.13+, else lgetxattr through /proc/self/fd/N/name
// (which costs a procfs lookup). Returns the value's length or -1 with errno.
ssize_t GetXattrAt(int dirfd, const std::string& name, const char* attr, char* buf, size_t size);

// Calls `fn` for each entry of directory fd `dirfd` except "." and ".."
// (`path` names it in errors). The fd itself stays open and unmoved.
// Packed lstat fields (SCAN in src/native.ts): mode uid gid rdevMajor rdevMinor
// size mtimeSec mtimeNsec ino nlink.
constexpr int kStatFields = 10;
void PackStat(const struct stat& st, double* f);

bool ForEachName(int dirfd, const std::string& path, const std::function<void(const struct dirent&)>& fn, SysError& e);

}  // namespace strata
