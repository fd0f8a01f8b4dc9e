#include "shared.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "pool.h"

namespace tp {

namespace {
constexpr uint64_t kStateMagic = 0x5354524154415031ull;  // "STRATAP1"
}

int createSharedState() {
  int fd = memfd_create("strata-poold-state", MFD_CLOEXEC);
  if (fd < 0) throw PoolError(errno, std::string("cannot make the daemon's state memfd: ") + strerror(errno));
  if (ftruncate(fd, sizeof(SharedState)) != 0) {
    int e = errno;
    close(fd);
    throw PoolError(e, "cannot size the daemon's state memfd");
  }
  SharedState* s = mapSharedState(fd);  // zero-filled: no records, nothing active
  s->magic = kStateMagic;
  munmap(s, sizeof(SharedState));
  return fd;
}

SharedState* mapSharedState(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || size_t(st.st_size) != sizeof(SharedState))
    throw PoolError(EINVAL, "not the daemon's state memfd");
  void* p = mmap(nullptr, sizeof(SharedState), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw PoolError(errno, std::string("cannot map the daemon's state: ") + strerror(errno));
  auto* s = static_cast<SharedState*>(p);
  if (s->magic != 0 && s->magic != kStateMagic) {
    munmap(p, sizeof(SharedState));
    throw PoolError(EINVAL, "the daemon's state memfd has a bad magic");
  }
  return s;
}

}  // namespace tp
