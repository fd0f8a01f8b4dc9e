#include "io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pool.h"

namespace tp {

void preadAll(int fd, uint8_t* buf, size_t len, uint64_t off) {
  while (len) {
    ssize_t n = pread(fd, buf, len, off_t(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw PoolError(errno, std::string("data read failed: ") + strerror(errno));
    if (n == 0) {  // past the end of a sparse or short file: zeros
      memset(buf, 0, len);
      return;
    }
    buf += n, len -= size_t(n), off += uint64_t(n);
  }
}

void pwriteAll(int fd, const uint8_t* buf, size_t len, uint64_t off) {
  while (len) {
    ssize_t n = pwrite(fd, buf, len, off_t(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw PoolError(errno, std::string("write failed: ") + strerror(errno));
    buf += n, len -= size_t(n), off += uint64_t(n);
  }
}

}  // namespace tp
