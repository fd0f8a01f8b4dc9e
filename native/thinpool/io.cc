#include "io.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
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

AlignedBuffer::~AlignedBuffer() { free(mem_); }

uint8_t* AlignedBuffer::get(size_t size) {
  if (size_ < size) {
    free(mem_);
    mem_ = nullptr;
    size_ = 0;
    bool huge = size >= (1 << 20);
    size_t bytes = huge ? (size + kHugePage - 1) / kHugePage * kHugePage : size;
    if (posix_memalign(reinterpret_cast<void**>(&mem_), huge ? kHugePage : kDirectAlign, bytes) != 0)
      throw PoolError(ENOMEM, "out of memory");
    if (huge) madvise(mem_, bytes, MADV_HUGEPAGE);  // best effort
    size_ = bytes;
  }
  return mem_;
}

}  // namespace tp
