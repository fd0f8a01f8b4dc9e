#include "sys/dir_at.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace strata {
namespace {

constexpr long kSysGetxattrat = 464;
struct XattrArgs {
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};
std::atomic<bool> noGetxattrat{false};

}  // namespace

ssize_t GetXattrAt(int dirfd, const std::string& name, const char* attr, char* buf, size_t size) {
  if (!noGetxattrat.load(std::memory_order_relaxed)) {
    XattrArgs args = {reinterpret_cast<uintptr_t>(buf), static_cast<uint32_t>(size), 0};
    long r = syscall(kSysGetxattrat, dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW, attr, &args, sizeof(args));
    if (r >= 0 || errno != ENOSYS) return r;
    noGetxattrat = true;
  }
  std::string p = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  return lgetxattr(p.c_str(), attr, buf, size);
}

void PackStat(const struct stat& st, double* f) {
  f[0] = st.st_mode;
  f[1] = st.st_uid;
  f[2] = st.st_gid;
  f[3] = major(st.st_rdev);
  f[4] = minor(st.st_rdev);
  f[5] = static_cast<double>(st.st_size);
  f[6] = static_cast<double>(st.st_mtim.tv_sec);
  f[7] = static_cast<double>(st.st_mtim.tv_nsec);
  f[8] = static_cast<double>(st.st_ino);
  f[9] = static_cast<double>(st.st_nlink);
}

bool ForEachName(int dirfd, const std::string& path, const std::function<void(const struct dirent&)>& fn, SysError& e) {
  int fd = dup(dirfd);  // closedir closes its fd
  if (fd < 0) return Fail(e, "dup", path);
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return Fail(e, "fdopendir", path);
  }
  errno = 0;
  while (struct dirent* ent = readdir(d)) {
    if (ent->d_name[0] == '.' && (ent->d_name[1] == 0 || (ent->d_name[1] == '.' && ent->d_name[2] == 0))) continue;
    fn(*ent);
  }
  int err = errno;
  closedir(d);
  if (err) {
    errno = err;
    return Fail(e, "readdir", path);
  }
  return true;
}

}  // namespace strata
