// Whole-buffer pread/pwrite that retry on short transfers and EINTR.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace tp {
/** Reads exactly `len` bytes at `off`; bytes past end of file read as zeros. Throws PoolError(EIO...). */
void preadAll(int fd, uint8_t* buf, size_t len, uint64_t off);
/** Writes exactly `len` bytes at `off`. Throws PoolError with the errno. */
void pwriteAll(int fd, const uint8_t* buf, size_t len, uint64_t off);
}  // namespace tp
