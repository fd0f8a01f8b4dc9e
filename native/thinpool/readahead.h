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
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "pool.h"

namespace tp {

class ReadAhead {
 public:
  struct Device;  // readahead.cc
  /** One device's read-ahead state, looked up once per request (see `device`). */
  using DeviceRef = std::shared_ptr<Device>;

  explicit ReadAhead(Pool& pool) : pool_(pool) {}
  /** The state of device `id`, made on first use; shared, so a fill outlives forget(). */
  DeviceRef device(uint64_t id);
  /**
   * When one of the device's windows holds [off, off + len) (waiting for a
   * fill in progress that will), calls `reply` with those bytes, in place:
   * the window stays as it is until `reply` returns (it copies them into the
   * kernel). False: read them from the pool.
   */
  bool serve(Device& d, uint64_t off, size_t len, const std::function<void(const uint8_t*)>& reply);
  /**
   * After a read of [off, off + len) of device `id` was answered: when its
   * reads form a stream and the window after the one it is in is not there
   * yet, fills it (on the calling worker thread), clipped to `deviceSize`.
   */
  void after(Device& d, uint64_t id, uint64_t off, size_t len, uint64_t deviceSize);
  /** Drops device `id`'s windows (on deactivation). */
  void forget(uint64_t id);

 private:
  Pool& pool_;
  std::mutex mapMu_;
  std::map<uint64_t, DeviceRef> devices_;
};

}  // namespace tp
