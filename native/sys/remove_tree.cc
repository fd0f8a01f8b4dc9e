// Removing a directory tree by file descriptor: openat/unlinkat walking
// down, so no path is ever longer than one name. A tree of any depth goes
// (a layer can hold 3,000 nested directories whose full path is far beyond
// PATH_MAX), with a bounded number of open fds.
//
// - The top entry is never followed: a symlink (or any non-directory) named
//   by the caller is unlinked itself, so a link planted in a store never
//   empties its target.
// - Directories are opened with O_NOFOLLOW | O_DIRECTORY; a mount point (the
//   top or any directory inside the tree) is refused with EXDEV and nothing
//   below it is touched.
// - At most kOpenLevels directory streams are open at once. A level whose
//   stream was closed is reopened through ".." of its child when the walk
//   climbs back, and must be the same directory (device and inode) or the
//   removal stops with ESTALE: the tree moved under the walk.
// - Entries are removed as they are read; a reopened directory is read from
//   its start again, and what was removed before is simply no longer there.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "addon/common.h"

namespace strata {
namespace {

constexpr size_t kOpenLevels = 32;

struct Level {
  DIR* dir = nullptr;  // null once closed to bound the fds in use
  dev_t dev = 0;
  ino_t ino = 0;
  std::string name;  // its name in the level above
};

bool IsDots(const char* n) { return n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0)); }

// Identity of an open directory, and whether it is the root of a mount (a bind
// mount of the same filesystem has the same st_dev; STATX_ATTR_MOUNT_ROOT tells).
struct DirId {
  dev_t dev;
  ino_t ino;
  bool mountRoot;
};

bool Identify(int fd, DirId* id) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_INO, &stx) != 0) return false;
  id->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  id->ino = stx.stx_ino;
  id->mountRoot = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
  return true;
}

// Where an error happened: the top name and the depth (a full path may not fit anywhere).
std::string Where(const std::string& top, size_t depth, const std::string& name) {
  if (depth == 0) return top;
  return top + "/…(depth " + std::to_string(depth) + ")/" + name;
}

class TreeRemover {
 public:
  TreeRemover(int parentfd, std::string top) : parentfd_(parentfd), top_(std::move(top)) {}
  ~TreeRemover() {
    for (auto& l : levels_)
      if (l.dir) closedir(l.dir);
  }

  bool Run(SysError& e) {
    int fd = openat(parentfd_, top_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return true;
      // Not a directory, or a symlink: remove the entry itself, never what it points to.
      if (errno == ENOTDIR || errno == ELOOP) {
        if (unlinkat(parentfd_, top_.c_str(), 0) == 0 || errno == ENOENT) return true;
      }
      return Fail(e, "openat", top_);
    }
    DirId id;
    if (!Identify(fd, &id)) {
      close(fd);
      return Fail(e, "statx", top_);
    }
    if (id.mountRoot) {
      close(fd);
      errno = EXDEV;  // a mount point: never remove another filesystem's content
      return Fail(e, "openat", top_);
    }
    dev_ = id.dev;
    if (!Push(fd, id, top_, e)) return false;
    while (!levels_.empty()) {
      if (!Step(e)) return false;
    }
    return true;
  }

 private:
  int parentfd_;
  std::string top_;
  dev_t dev_ = 0;
  std::vector<Level> levels_;
  size_t open_ = 0;
  size_t oldestOpen_ = 0;  // levels below this index have no stream

  bool Push(int fd, const DirId& id, const std::string& name, SysError& e) {
    DIR* d = fdopendir(fd);
    if (!d) {
      close(fd);
      return Fail(e, "fdopendir", Where(top_, levels_.size(), name));
    }
    levels_.push_back(Level{d, id.dev, id.ino, name});
    open_++;
    // Bound the fds: close the stream of the oldest open level (it is reopened on the way up).
    while (open_ > kOpenLevels) {
      Level& l = levels_[oldestOpen_];
      closedir(l.dir);
      l.dir = nullptr;
      open_--;
      oldestOpen_++;
    }
    return true;
  }

  // Reads one entry of the deepest level and removes it, descends into it, or
  // finishes the level.
  bool Step(SysError& e) {
    Level& cur = levels_.back();
    errno = 0;
    struct dirent* ent = readdir(cur.dir);
    if (!ent) {
      if (errno != 0) return Fail(e, "readdir", Where(top_, levels_.size() - 1, cur.name));
      return Finish(e);
    }
    if (IsDots(ent->d_name)) return true;
    int dfd = dirfd(cur.dir);
    std::string name = ent->d_name;
    if (ent->d_type != DT_DIR) {
      if (unlinkat(dfd, name.c_str(), 0) == 0 || errno == ENOENT) return true;
      // d_type may be DT_UNKNOWN: unlink(2) of a directory says EISDIR.
      if (errno != EISDIR) return Fail(e, "unlinkat", Where(top_, levels_.size(), name));
    }
    int fd = openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return true;
      // Replaced by a non-directory since it was read: remove that instead.
      if (errno == ENOTDIR || errno == ELOOP) {
        if (unlinkat(dfd, name.c_str(), 0) == 0 || errno == ENOENT) return true;
      }
      return Fail(e, "openat", Where(top_, levels_.size(), name));
    }
    DirId id;
    if (!Identify(fd, &id)) {
      close(fd);
      return Fail(e, "statx", Where(top_, levels_.size(), name));
    }
    if (id.mountRoot || id.dev != dev_) {
      close(fd);
      errno = EXDEV;  // a mount point: never remove another filesystem's content
      return Fail(e, "openat", Where(top_, levels_.size(), name));
    }
    return Push(fd, id, name, e);
  }

  // The deepest level is empty: remove it from the level above (reopened if needed).
  bool Finish(SysError& e) {
    Level done = levels_.back();
    levels_.pop_back();
    if (levels_.empty()) {
      closedir(done.dir);
      open_--;
      if (unlinkat(parentfd_, top_.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return true;
      return Fail(e, "unlinkat", top_);
    }
    Level& up = levels_.back();
    if (!up.dir) {
      int fd = openat(dirfd(done.dir), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) {
        closedir(done.dir);
        return Fail(e, "openat", Where(top_, levels_.size() - 1, up.name));
      }
      DirId id;
      if (!Identify(fd, &id) || id.dev != up.dev || id.ino != up.ino) {
        close(fd);
        closedir(done.dir);
        errno = ESTALE;  // the tree was moved while it was being removed
        return Fail(e, "openat", Where(top_, levels_.size() - 1, up.name));
      }
      up.dir = fdopendir(fd);
      if (!up.dir) {
        close(fd);
        closedir(done.dir);
        return Fail(e, "fdopendir", Where(top_, levels_.size() - 1, up.name));
      }
      open_++;
      oldestOpen_ = levels_.size() - 1;
    }
    closedir(done.dir);
    open_--;
    if (unlinkat(dirfd(up.dir), done.name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return true;
    return Fail(e, "unlinkat", Where(top_, levels_.size(), done.name));
  }
};

// removeTreeAt(dirfd, name): removes `name` (one component) inside directory
// fd `dirfd` and everything below it. A missing entry is not an error.
Napi::Value RemoveTreeAt(const Napi::CallbackInfo& info) {
  int dirfd = static_cast<int>(ArgInt(info, 0, "dirfd"));
  std::string name = ArgString(info, 1, "name");
  if (name.empty() || name.find('/') != std::string::npos || IsDots(name.c_str())) {
    throw Napi::TypeError::New(info.Env(), "name must be one path component");
  }
  return RunAsync(
      info.Env(), [=](SysError& e) { return TreeRemover(dirfd, name).Run(e); },
      [](Napi::Env env) { return env.Undefined(); });
}

}  // namespace

void InitRemoveTree(Napi::Env env, Napi::Object exports) {
  exports.Set("removeTreeAt", Napi::Function::New(env, RemoveTreeAt));
}

}  // namespace strata
