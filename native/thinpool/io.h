// Whole-buffer pread/pwrite that retry on short transfers and EINTR, and
// buffers aligned for O_DIRECT.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace tp {

/** Alignment of offsets, lengths and memory for O_DIRECT transfers on the data file. */
constexpr size_t kDirectAlign = 4096;
/** A transparent huge page: buffers of 1 MiB and more are made of them (see AlignedBuffer). */
constexpr size_t kHugePage = 2 << 20;

/** Reads exactly `len` bytes at `off`; bytes past end of file read as zeros. Throws PoolError(EIO...). */
void preadAll(int fd, uint8_t* buf, size_t len, uint64_t off);
/** Writes exactly `len` bytes at `off`. Throws PoolError with the errno. */
void pwriteAll(int fd, const uint8_t* buf, size_t len, uint64_t off);

/** True when an O_DIRECT transfer of `len` bytes at file offset `off` into/from `mem` is allowed. */
inline bool directAligned(uint64_t off, size_t len, const void* mem) {
  return off % kDirectAlign == 0 && len % kDirectAlign == 0 && reinterpret_cast<uintptr_t>(mem) % kDirectAlign == 0;
}

/**
 * A growable buffer aligned for O_DIRECT (one per thread where used; not
 * copyable). From 1 MiB up it is made of transparent huge pages: the kernel
 * pins it for each FUSE reply it copies out, one entry per huge page.
 */
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  /** At least `size` bytes; contents are not kept when it grows. */
  uint8_t* get(size_t size);

 private:
  uint8_t* mem_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tp
