// See readahead.h.
#include "readahead.h"

#include <algorithm>
#include <cstring>

namespace tp {

namespace {
constexpr uint64_t kWindowBytes = 4 << 20;  // read ahead per device: four 1 MiB requests
constexpr uint64_t kSlackBytes = 2 << 20;   // reads this far behind the frontier still count as sequential
}  // namespace

std::shared_ptr<ReadAhead::Window> ReadAhead::window(uint64_t id) {
  std::lock_guard l(mapMu_);
  auto& w = windows_[id];
  if (!w) w = std::make_shared<Window>();
  return w;
}

void ReadAhead::forget(uint64_t id) {
  std::lock_guard l(mapMu_);
  windows_.erase(id);
}

bool ReadAhead::serve(uint64_t id, uint64_t off, size_t len, uint8_t* out) {
  auto held = window(id);
  Window& w = *held;
  std::unique_lock l(w.mu);
  for (;;) {
    if (off < w.start || off + len > w.start + w.len) return false;
    if (!w.filling) break;
    w.filled.wait(l);
  }
  if (!w.valid || w.mutations != pool_.mutationsBegun()) {
    w.valid = false;
    return false;
  }
  memcpy(out, w.data + (off - w.start), len);
  return true;
}

void ReadAhead::after(uint64_t id, uint64_t off, size_t len, uint64_t deviceSize) {
  auto held = window(id);
  Window& w = *held;
  std::unique_lock l(w.mu);
  uint64_t end = off + len;
  // Near the frontier on either side: a request split in two may arrive second half first.
  bool near = off + kSlackBytes >= w.frontier && off <= w.frontier + kSlackBytes;
  w.streak = near ? w.streak + 1 : 0;
  bool sequential = w.streak >= 2;  // one read near the last is not yet a stream
  w.frontier = near ? std::max(w.frontier, end) : end;
  // Fill unless the window still holds valid bytes just ahead of this read (a
  // window elsewhere, left by another stream or a probe, does not count).
  bool spent = !w.valid || end < w.start || end >= w.start + w.len;
  if (!sequential || !spent || w.filling) return;
  // Begun first, then done: a mutation that begins after this load moves
  // mutationsBegun() and voids the window; one in flight now skips the fill.
  uint64_t mutations = pool_.mutationsBegun();
  if (pool_.mutationsDone() != mutations) return;
  uint64_t start = std::max(end, w.frontier);
  if (start >= deviceSize) return;
  w.start = start;
  w.len = std::min(kWindowBytes, deviceSize - start);
  w.mutations = mutations;
  w.filling = true;
  w.valid = false;
  w.data = w.buf.get(w.len);
  l.unlock();
  bool ok = true;
  try {
    pool_.read(id, w.start, w.data, w.len);
  } catch (...) {
    ok = false;  // the readers that waited read from the pool themselves
  }
  l.lock();
  w.filling = false;
  w.valid = ok && w.mutations == pool_.mutationsBegun();
  w.filled.notify_all();
}

}  // namespace tp
