// Read-ahead for sequential reads of a thin device. A direct reader (dd
// iflag=direct, a database scan) has one request in flight, so every request
// pays a FUSE round trip plus a data-file read; a disk or a plain loop file
// pays only the read. When a device's reads run sequentially, the window after
// the current one is read into memory once a request is answered, and the
// following requests are copied from it while the next one is read. Any
// mutation of the pool (write, discard, message) invalidates every window: a
// window is used only if no mutation began since its fill started (see
// Pool::mutationsBegun).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "io.h"
#include "pool.h"

namespace tp {

class ReadAhead {
 public:
  explicit ReadAhead(Pool& pool) : pool_(pool) {}
  /**
   * Copies [off, off + len) of device `id` into `out` when one of the device's
   * windows holds it (waiting for a fill in progress that will). False: read it from the pool.
   */
  bool serve(uint64_t id, uint64_t off, size_t len, uint8_t* out);
  /**
   * After a read of [off, off + len) was answered: when the device's reads
   * form a stream and the window after the one it is in is not there yet,
   * fills it (on the calling worker thread), clipped to `deviceSize`.
   */
  void after(uint64_t id, uint64_t off, size_t len, uint64_t deviceSize);
  /** Drops device `id`'s windows (on deactivation). */
  void forget(uint64_t id);

 private:
  /** One window: a range of the device read ahead into memory. */
  struct Slot {
    uint64_t start = 0, len = 0;
    uint64_t mutations = 0;  // Pool::mutationsBegun() when the fill started
    bool filling = false, valid = false;
    AlignedBuffer buf;
    uint8_t* data = nullptr;
  };
  /** Per device: two windows, so the next is read while the stream consumes the other. */
  struct Device {
    std::mutex mu;
    std::condition_variable filled;
    uint64_t frontier = 0;  // end of the furthest read so far
    int streak = 0;         // reads in a row near the frontier
    Slot slots[2];
  };
  std::shared_ptr<Device> device(uint64_t id);

  Pool& pool_;
  std::mutex mapMu_;
  std::map<uint64_t, std::shared_ptr<Device>> devices_;  // shared: a fill outlives forget()
};

}  // namespace tp
