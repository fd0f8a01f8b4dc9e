// See readahead.h.
#include "readahead.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>

#include "io.h"

namespace tp {

namespace {
constexpr uint64_t kWindowBytes = 4 << 20;  // per slot: four 1 MiB requests
constexpr uint64_t kSlackBytes = 2 << 20;   // reads this far from the frontier still count as sequential
}  // namespace

/** Per device: two windows, so the next is read while the stream consumes the other. */
struct ReadAhead::Device {
  /** One window: a range of the device read ahead into memory. */
  struct Slot {
    uint64_t start = 0, len = 0;
    uint64_t mutations = 0;  // Pool::mutationsBegun() when the fill started
    bool filling = false, valid = false;
    AlignedBuffer buf;
    uint8_t* data = nullptr;
  };
  std::mutex mu;
  std::condition_variable filled;
  uint64_t frontier = 0;  // end of the furthest read so far
  int streak = 0;         // reads in a row near the frontier
  Slot slots[2];
};

ReadAhead::DeviceRef ReadAhead::device(uint64_t id) {
  std::lock_guard l(mapMu_);
  auto& d = devices_[id];
  if (!d) d = std::make_shared<Device>();
  return d;
}

void ReadAhead::forget(uint64_t id) {
  std::lock_guard l(mapMu_);
  devices_.erase(id);
}

bool ReadAhead::serve(Device& d, uint64_t off, size_t len, const std::function<void(const uint8_t*)>& reply) {
  std::unique_lock l(d.mu);
  for (;;) {
    Device::Slot* s = nullptr;
    for (Device::Slot& c : d.slots)
      if (off >= c.start && off + len <= c.start + c.len) s = &c;
    if (!s) return false;
    if (s->filling) {
      d.filled.wait(l);
      continue;
    }
    if (!s->valid || s->mutations != pool_.mutationsBegun()) {
      s->valid = false;
      return false;
    }
    // Under the lock: no fill can start on this slot until the reply is copied out.
    reply(s->data + (off - s->start));
    return true;
  }
}

void ReadAhead::after(Device& d, uint64_t id, uint64_t off, size_t len, uint64_t deviceSize) {
  std::unique_lock l(d.mu);
  uint64_t end = off + len;
  // Near the frontier on either side: a request split in two may be answered second half first.
  bool near = off + kSlackBytes >= d.frontier && off <= d.frontier + kSlackBytes;
  d.streak = near ? d.streak + 1 : 0;
  d.frontier = near ? std::max(d.frontier, end) : end;
  if (d.streak < 2 || d.slots[0].filling || d.slots[1].filling) return;  // one read near the last is not yet a stream
  // The slot the stream is in; the next window is filled into the other one,
  // so that it is read while the stream consumes this one.
  int in = -1;
  for (int i = 0; i < 2; i++)
    if (d.slots[i].valid && d.frontier >= d.slots[i].start && d.frontier < d.slots[i].start + d.slots[i].len) in = i;
  Device::Slot& fill = d.slots[in < 0 ? 0 : 1 - in];
  uint64_t start = in < 0 ? d.frontier : d.slots[in].start + d.slots[in].len;
  if (in >= 0 && fill.valid && fill.start == start) return;  // the next window is there already
  if (start >= deviceSize) return;
  // Begun first, then done: a mutation that begins after this load moves
  // mutationsBegun() and voids the window; one in flight now skips the fill.
  uint64_t mutations = pool_.mutationsBegun();
  if (pool_.mutationsDone() != mutations) return;
  fill.start = start;
  fill.len = std::min(kWindowBytes, deviceSize - start);
  fill.mutations = mutations;
  fill.filling = true;
  fill.valid = false;
  fill.data = fill.buf.get(fill.len);
  l.unlock();
  bool ok = true;
  try {
    pool_.read(id, fill.start, fill.data, fill.len);
  } catch (...) {
    ok = false;  // the readers that waited read from the pool themselves
  }
  l.lock();
  fill.filling = false;
  fill.valid = ok && fill.mutations == pool_.mutationsBegun();
  d.filled.notify_all();
}

}  // namespace tp
