// ApplyFs: the per-entry filesystem work of applyLayer (see apply_fs.h).
// Each op does, call for call, what Docker's createTarFile does: create in
// the contained parent, replace what is there unless dir-on-dir, then
// lchown, xattrs (ENOTSUP/EPERM are warnings), chmod after chown, times.
// Creation is tried first and an existing name is looked at only on EEXIST,
// which gives the same result with one fstatat fewer per new entry.
#include "apply/apply_fs.h"

#include "sys/dir_at.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <climits>

namespace strata {
namespace {

constexpr size_t kMaxCachedDirs = 1024;
constexpr uint32_t kOpParallelFlag = 0x100;  // see apply_pool.h

std::string ProcPath(int fd, const std::string& name = "") {
  std::string p = "/proc/self/fd/" + std::to_string(fd);
  if (!name.empty()) p += "/" + name;
  return p;
}

int OpenInRoot(int root, const std::string& rel) {
  struct open_how how = {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long r;
  do r = syscall(SYS_openat2, root, rel.c_str(), &how, sizeof(how));
  while (r < 0 && (errno == EAGAIN || errno == EINTR));  // EAGAIN: a rename raced the lookup
  return static_cast<int>(r);
}

std::pair<std::string, std::string> Split(const std::string& rel) {
  size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

// The text of a Node errno error, so warnings read like strata's other errors.
std::string ErrText(int err, const char* syscall, const std::string& path) {
  const char* name = strerrorname_np(err);
  return std::string(name ? name : "E?") + ": " + strerror(err) + ", " + syscall + " '" + path + "'";
}

bool XattrTolerated(int err) { return err == ENOTSUP || err == EOPNOTSUPP || err == EPERM; }

void Warn(std::vector<std::string>& w, const ApplyOpRec& op, const Xattr& x, int err, const std::string& path) {
  w.push_back("ignored xattr " + x.key + " on \"" + op.name + "\": " + ErrText(err, "lsetxattr", path));
}

bool Missing(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP; }

// A parent that exists but does not lead to a directory inside the root (file, loop, dangling link).
bool NotADir(SysError& e, const std::string& rel) {
  int err = errno;
  Fail(e, "openat2", rel);
  if (!Missing(err)) return false;
  e.code = "ERR_PARENT_NOT_DIR";
  e.message = "Cannot apply the entry: parent \"" + rel + "\" is not a directory inside the layer root (" +
              (strerrorname_np(err) ? strerrorname_np(err) : "E?") + ")";
  return false;
}

bool LinkTargetError(SysError& e, const ApplyOpRec& op, const char* why) {
  e.code = "ERR_LINK_TARGET";
  e.message = "Cannot apply the entry: hardlink \"" + op.name + "\" -> \"" + (op.keep.empty() ? "" : op.keep[0]) +
              "\": " + why;
  return false;
}

}  // namespace

ApplyFs::~ApplyFs() {
  DropCache();
  for (int fd : dropped_) close(fd);
  for (auto& f : files_) close(f.second);
}

void ApplyFs::DropCache() {
  for (auto& d : dirs_) dropped_.push_back(d.second);
  dirs_.clear();
}

// The O_PATH fd of directory `rel`, resolved inside the root. With `create`,
// missing components are made 0755, as implied parents are.
int ApplyFs::Dir(const std::string& rel, bool create, SysError& e) {
  if (rel.empty()) return root_;
  auto it = dirs_.find(rel);
  if (it != dirs_.end()) return it->second;
  int fd = OpenInRoot(root_, rel);
  if (fd < 0) {
    if (!create) return Fail(e, "openat2", rel), -1;
    if (errno != ENOENT) return NotADir(e, rel), -1;
    auto [parentRel, base] = Split(rel);
    int parent = Dir(parentRel, true, e);
    if (parent < 0) return -1;
    if (mkdirat(parent, base.c_str(), 0755) != 0 && errno != EEXIST) return Fail(e, "mkdirat", rel), -1;
    fd = OpenInRoot(root_, rel);
    if (fd < 0) return NotADir(e, rel), -1;  // e.g. a symlink whose target is missing inside the root
  }
  if (dirs_.size() >= kMaxCachedDirs) DropCache();
  dirs_.emplace(rel, fd);
  return fd;
}

// rm -rf of one name inside a contained directory, never following symlinks.
bool ApplyFs::RemoveAll(int parent, const std::string& name, SysError& e) {
  DropCache();  // a cached fd below `name` would outlive its directory
  removals_++;
  return RemoveTree(parent, name, e);
}

bool ApplyFs::RemoveTree(int at, const std::string& name, SysError& e) {
  if (unlinkat(at, name.c_str(), 0) == 0 || errno == ENOENT) return true;
  if (errno != EISDIR) return Fail(e, "unlinkat", name);
  int fd = openat(at, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || Fail(e, "openat", name);
  std::vector<std::string> children;
  bool ok = ForEachName(fd, name, [&](const struct dirent& d) { children.emplace_back(d.d_name); }, e);
  for (size_t i = 0; ok && i < children.size(); i++) ok = RemoveTree(fd, children[i], e);
  close(fd);
  if (!ok) return false;
  return unlinkat(at, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT || Fail(e, "unlinkat", name);
}

bool ApplyFs::Run(const ApplyOpRec& op, const struct iovec* bufs, SysError& e, std::vector<std::string>& w) {
  bool ok = true;
  switch (op.op & ~kOpParallelFlag) {
    case kOpEntry:
      ok = Entry(op, bufs, e, w);
      break;
    case kOpBegin: {
      int parent = Dir(op.parent, true, e), fd = -1;
      ok = parent >= 0 && CreateFile(parent, op, &fd, e);
      if (ok) files_[op.handle] = fd;
      break;
    }
    case kOpWrite:
    case kOpEnd: {
      auto it = files_.find(op.handle);
      if (it == files_.end()) {
        errno = EBADF;
        ok = Fail(e, "write", op.name);
        break;
      }
      if (op.op == kOpWrite) {
        ok = WriteAll(it->second, bufs, op.nbufs, op, e);
      } else {
        ok = FinishFd(it->second, op, e, w);
        close(it->second);
        files_.erase(it);
      }
      break;
    }
    case kOpWhiteoutAufs: {
      int parent = Dir(op.parent, false, e);
      if (parent < 0) ok = e.err == ENOENT || e.err == ENOTDIR;  // nothing there to delete
      else ok = RemoveAll(parent, op.base, e);
      break;
    }
    case kOpWhiteoutOverlay: {
      int parent = Dir(op.parent, true, e);
      ok = parent >= 0 && RemoveAll(parent, op.base, e);
      if (ok && mknodat(parent, op.base.c_str(), S_IFCHR, makedev(0, 0)) != 0) ok = Fail(e, "mknodat", op.name);
      if (ok && fchownat(parent, op.base.c_str(), op.uid, op.gid, AT_SYMLINK_NOFOLLOW) != 0)
        ok = Fail(e, "fchownat", op.name);
      break;
    }
    case kOpOpaqueOverlay: {
      int dir = Dir(op.parent, true, e);
      ok = dir >= 0;
      // "/." makes the l-call act on the directory, not on the /proc fd link itself
      if (ok && lsetxattr((ProcPath(dir) + "/.").c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0)
        ok = Fail(e, "lsetxattr", op.name);
      break;
    }
    case kOpOpaqueAufs: {
      std::unordered_set<std::string> keep(op.keep.begin(), op.keep.end());
      ok = Dir(op.parent, true, e) >= 0 && RemoveNotUnpacked(op.parent, keep, e);
      break;
    }
    case kOpDirTime:
      ok = DirTime(op, e);
      break;
    default:
      errno = EINVAL;
      ok = Fail(e, "apply", "unknown op");
  }
  for (int fd : dropped_) close(fd);
  dropped_.clear();
  return ok;
}

bool ApplyFs::CreateFile(int parent, const ApplyOpRec& op, int* fd, SysError& e) {
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  *fd = openat(parent, op.base.c_str(), flags, 0600);
  if (*fd < 0 && errno == EEXIST) {
    if (!RemoveAll(parent, op.base, e)) return false;
    *fd = openat(parent, op.base.c_str(), flags, 0600);
  }
  return *fd >= 0 || Fail(e, "openat2", op.name);
}

bool ApplyFs::WriteAll(int fd, const struct iovec* bufs, uint32_t n, const ApplyOpRec& op, SysError& e) {
  std::vector<struct iovec> iov(bufs, bufs + n);
  size_t i = 0;
  while (i < iov.size()) {
    int cnt = static_cast<int>(std::min<size_t>(iov.size() - i, IOV_MAX));
    ssize_t w = writev(fd, &iov[i], cnt);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Fail(e, "write", op.name);
    }
    size_t left = static_cast<size_t>(w);
    while (i < iov.size() && left >= iov[i].iov_len) left -= iov[i++].iov_len;
    if (i < iov.size()) {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
  }
  return true;
}

bool ApplyFs::Entry(const ApplyOpRec& op, const struct iovec* bufs, SysError& e, std::vector<std::string>& w) {
  if (op.kind == kKindRoot) return FinishRoot(op, e, w);
  int parent = Dir(op.parent, true, e);
  if (parent < 0) return false;
  const char* base = op.base.c_str();
  switch (op.kind) {
    case kKindDir: {
      if (mkdirat(parent, base, op.mode) == 0) break;
      if (errno != EEXIST) return Fail(e, "mkdirat", op.name);
      struct stat st;
      if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) != 0) return Fail(e, "fstatat", op.name);
      if (S_ISDIR(st.st_mode)) break;  // dir on dir: metadata only
      if (!RemoveAll(parent, op.base, e)) return false;
      if (mkdirat(parent, base, op.mode) != 0) return Fail(e, "mkdirat", op.name);
      break;
    }
    case kKindFile: {
      int fd;
      if (!CreateFile(parent, op, &fd, e)) return false;
      bool ok = WriteAll(fd, bufs, op.nbufs, op, e) && FinishFd(fd, op, e, w);
      close(fd);
      return ok;
    }
    case kKindSymlink: {
      if (symlinkat(op.link1.c_str(), parent, base) != 0) {
        if (errno != EEXIST) return Fail(e, "symlinkat", op.name);
        if (!RemoveAll(parent, op.base, e)) return false;
        if (symlinkat(op.link1.c_str(), parent, base) != 0) return Fail(e, "symlinkat", op.name);
      }
      return FinishAt(parent, op, true, e, w);
    }
    case kKindLink:
      return Hardlink(parent, op, e, w);
    case kKindPlnk:
      return Plnk(parent, op, e, w);
    case kKindChar:
    case kKindBlock:
    case kKindFifo: {
      mode_t type = op.kind == kKindChar ? S_IFCHR : op.kind == kKindBlock ? S_IFBLK : S_IFIFO;
      dev_t dev = makedev(op.major, op.minor);
      if (mknodat(parent, base, type | op.mode, dev) != 0) {
        if (errno != EEXIST) return Fail(e, "mknodat", op.name);
        if (!RemoveAll(parent, op.base, e)) return false;
        if (mknodat(parent, base, type | op.mode, dev) != 0) return Fail(e, "mknodat", op.name);
      }
      break;
    }
    default:
      errno = EINVAL;
      return Fail(e, "apply", op.name);
  }
  return FinishAt(parent, op, false, e, w);
}

// What is at parent/base goes before a link is made there (any type: no dir-on-dir merge).
bool ApplyFs::ReplaceExisting(int parent, const ApplyOpRec& op, SysError& e) {
  struct stat st;
  if (fstatat(parent, op.base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return RemoveAll(parent, op.base, e);
  return errno == ENOENT || Fail(e, "fstatat", op.name);
}

// A hardlink to an existing non-directory of the layer (link1/link2: its parent and name).
bool ApplyFs::Hardlink(int parent, const ApplyOpRec& op, SysError& e, std::vector<std::string>& w) {
  if (!ReplaceExisting(parent, op, e)) return false;
  int tParent = Dir(op.link1, false, e);
  if (tParent < 0) return Missing(e.err) ? LinkTargetError(e, op, "no such file in the layer") : false;
  struct stat st;
  if (fstatat(tParent, op.link2.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Missing(errno) ? LinkTargetError(e, op, "no such file in the layer") : Fail(e, "fstatat", op.name);
  if (S_ISDIR(st.st_mode)) return LinkTargetError(e, op, "the target is a directory");
  if (linkat(tParent, op.link2.c_str(), parent, op.base.c_str(), 0) != 0) return Fail(e, "linkat", op.name);
  // chown clears file capabilities, and GNU tar writes xattrs only on the first name
  // of an inode: leave the owner alone when it is already right.
  bool keepOwner = st.st_uid == op.uid && st.st_gid == op.gid;
  return FinishAt(parent, op, S_ISLNK(st.st_mode), e, w, keepOwner);
}

// The first name made from a .wh..wh.plnk body holds its inode; later names
// link to it (as in Docker), or get a copy of the body when it is gone.
bool ApplyFs::Plnk(int parent, const ApplyOpRec& op, SysError& e, std::vector<std::string>& w) {
  if (!ReplaceExisting(parent, op, e)) return false;
  auto first = plnkFirst_.find(op.link1);
  if (first != plnkFirst_.end()) {
    auto [dirRel, name] = Split(first->second);
    int dir = Dir(dirRel, false, e);
    if (dir >= 0 && linkat(dir, name.c_str(), parent, op.base.c_str(), 0) == 0) return FinishAt(parent, op, false, e, w);
    if (dir >= 0 && !(errno == ENOENT || errno == ENOTDIR)) return Fail(e, "linkat", op.name);
    if (dir < 0 && !(e.err == ENOENT || e.err == ENOTDIR)) return false;
  }
  plnkFirst_[op.link1] = op.parent.empty() ? op.base : op.parent + "/" + op.base;
  int fd;
  if (!CreateFile(parent, op, &fd, e)) return false;
  int src = open(op.link2.c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = src >= 0 || Fail(e, "open", op.link2);
  std::vector<char> buf(1 << 20);
  while (ok) {
    ssize_t n = read(src, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ok = Fail(e, "read", op.link2);
    if (n <= 0) break;
    struct iovec v = {buf.data(), static_cast<size_t>(n)};
    ok = WriteAll(fd, &v, 1, op, e);
  }
  if (src >= 0) close(src);
  ok = ok && FinishFd(fd, op, e, w);
  close(fd);
  return ok;
}

// Ownership, xattrs, mode (after chown: chown clears setuid), then times.
bool ApplyFs::FinishFd(int fd, const ApplyOpRec& op, SysError& e, std::vector<std::string>& w) {
  if (fchown(fd, op.uid, op.gid) != 0) return Fail(e, "fchownat", op.name);
  for (const auto& x : op.xattrs) {
    if (fsetxattr(fd, x.key.c_str(), x.value.data(), x.value.size(), 0) == 0) continue;
    if (!XattrTolerated(errno)) return Fail(e, "lsetxattr", op.name);
    Warn(w, op, x, errno, op.base);
  }
  if (fchmod(fd, op.mode) != 0) return Fail(e, "fchmodat", op.name);
  if (futimens(fd, op.times) != 0) return Fail(e, "utimensat", op.name);
  return true;
}

bool ApplyFs::FinishAt(int parent, const ApplyOpRec& op, bool symlink, SysError& e, std::vector<std::string>& w,
                       bool keepOwner) {
  const char* base = op.base.c_str();
  if (!keepOwner && fchownat(parent, base, op.uid, op.gid, AT_SYMLINK_NOFOLLOW) != 0)
    return Fail(e, "fchownat", op.name);
  if (!op.xattrs.empty()) {
    std::string path = ProcPath(parent, op.base);
    for (const auto& x : op.xattrs) {
      if (lsetxattr(path.c_str(), x.key.c_str(), x.value.data(), x.value.size(), 0) == 0) continue;
      if (!XattrTolerated(errno)) return Fail(e, "lsetxattr", op.name);
      Warn(w, op, x, errno, op.base);
    }
  }
  if (!symlink && fchmodat(parent, base, op.mode, 0) != 0) return Fail(e, "fchmodat", op.name);
  if (utimensat(parent, base, op.times, AT_SYMLINK_NOFOLLOW) != 0) return Fail(e, "utimensat", op.name);
  return true;
}

bool ApplyFs::FinishRoot(const ApplyOpRec& op, SysError& e, std::vector<std::string>& w) {
  std::string path = ProcPath(root_);
  if (fchownat(AT_FDCWD, path.c_str(), op.uid, op.gid, 0) != 0) return Fail(e, "fchownat", op.name);
  std::string dot = path + "/.";  // the directory itself, not the fd's magic link
  for (const auto& x : op.xattrs) {
    if (lsetxattr(dot.c_str(), x.key.c_str(), x.value.data(), x.value.size(), 0) == 0) continue;
    if (!XattrTolerated(errno)) return Fail(e, "lsetxattr", op.name);
    Warn(w, op, x, errno, path);
  }
  if (fchmodat(AT_FDCWD, path.c_str(), op.mode, 0) != 0) return Fail(e, "fchmodat", op.name);
  if (utimensat(AT_FDCWD, path.c_str(), op.times, 0) != 0) return Fail(e, "utimensat", op.name);
  return true;
}

// Opaque directory in AUFS form: delete what this layer did not itself create.
bool ApplyFs::RemoveNotUnpacked(const std::string& dirRel, const std::unordered_set<std::string>& keep,
                                SysError& e) {
  int dir = Dir(dirRel, false, e);
  if (dir < 0) return false;
  int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Fail(e, "openat", dirRel);
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return Fail(e, "fdopendir", dirRel);
  }
  std::vector<std::pair<std::string, bool>> children;
  while (struct dirent* ent = readdir(d)) {
    const char* n = ent->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    bool isDir = ent->d_type == DT_DIR;
    if (ent->d_type == DT_UNKNOWN) {
      struct stat st;
      isDir = fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    children.emplace_back(n, isDir);
  }
  closedir(d);
  for (const auto& [name, isDir] : children) {
    std::string childRel = dirRel.empty() ? name : dirRel + "/" + name;
    if (!keep.count(childRel)) {
      int parent = Dir(dirRel, false, e);
      if (parent < 0 || !RemoveAll(parent, name, e)) return false;
    } else if (isDir && !RemoveNotUnpacked(childRel, keep, e)) {
      return false;
    }
  }
  return true;
}

// Directory times change as children are created; they are set last.
bool ApplyFs::DirTime(const ApplyOpRec& op, SysError& e) {
  auto tolerated = [](int err) { return err == ENOENT || err == ENOTDIR; };  // removed later in the layer
  if (op.kind == kKindRoot) {
    std::string path = ProcPath(root_);
    return utimensat(AT_FDCWD, path.c_str(), op.times, 0) == 0 || tolerated(errno) ||
           Fail(e, "utimensat", op.name);
  }
  int parent = Dir(op.parent, false, e);
  if (parent < 0) return tolerated(e.err);
  return utimensat(parent, op.base.c_str(), op.times, AT_SYMLINK_NOFOLLOW) == 0 || tolerated(errno) ||
         Fail(e, "utimensat", op.name);
}

}  // namespace strata
