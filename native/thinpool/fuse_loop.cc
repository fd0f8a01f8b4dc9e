// The FUSE session loop: a fixed set of worker threads, each reading
// requests into its own buffer placed so that a WRITE's payload (after the
// 80-byte request header) starts on a page boundary. The pool writes whole
// blocks from it with O_DIRECT as they are, without copying them first
// (libfuse's own loop reads into malloc'd buffers, leaving the payload
// unaligned).
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <vector>

#include "daemon.h"
#include "io.h"

namespace tp {

namespace {

constexpr int kWorkers = 16;  // requests served at once (the kernel queues up to max_background)
constexpr size_t kWriteHeader = sizeof(fuse_in_header) + sizeof(fuse_write_in);
// libfuse 3.14 reads up to 256 pages + one page of header into the buffer;
// twice that leaves room for any later libfuse's larger default.
constexpr size_t kReceiveBytes = 2 * (256 * 4096 + 4096);

class ReceiveBuffer {
 public:
  ReceiveBuffer() {
    region_ = mmap(nullptr, kRegion, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region_ == MAP_FAILED) throw PoolError(ENOMEM, "cannot map a FUSE receive buffer");
    // The payload starts on a 2 MiB boundary, in a transparent huge page: the
    // kernel pins the buffer for every request it copies in (gup), and a huge
    // page is one entry to walk instead of 256 (measured: 16 % of the
    // daemon's CPU went to pinning 4 KiB pages). The header sits in the
    // ordinary page before it.
    uintptr_t at = reinterpret_cast<uintptr_t>(region_) + kDirectAlign;
    uint8_t* payload = reinterpret_cast<uint8_t*>((at + kHugePage - 1) & ~(kHugePage - 1));
    madvise(payload, kHugePage, MADV_HUGEPAGE);  // best effort
    mem_ = payload - kWriteHeader;
    // Present before the first request: the kernel pins the buffer to copy a
    // request in, and pinning a page not yet there must fault it in, which
    // fails while the process is being killed, and that request with it
    // (EIO) instead of being sent again to the daemon that takes over.
    memset(mem_, 0, kCapacity);
  }
  ~ReceiveBuffer() { munmap(region_, kRegion); }
  ReceiveBuffer(const ReceiveBuffer&) = delete;
  ReceiveBuffer& operator=(const ReceiveBuffer&) = delete;
  uint8_t* mem() const { return mem_; }
  static constexpr size_t kCapacity = kReceiveBytes;

 private:
  static constexpr size_t kRegion = kDirectAlign + kHugePage + kReceiveBytes;
  void* region_;
  uint8_t* mem_;
};

// Keeps the first INIT request for a daemon that may have to take over (see shared.h).
void keepInit(Daemon& d, const fuse_buf& buf) {
  if (!d.shared || d.shared->initLen || buf.size < sizeof(fuse_in_header) || buf.size > kInitBytes) return;
  if (static_cast<const fuse_in_header*>(buf.mem)->opcode != FUSE_INIT) return;
  memcpy(d.shared->init, buf.mem, buf.size);
  d.shared->initLen = uint32_t(buf.size);
}

// Returns 0 when the session ends (unmounted), a negative errno on failure.
int workerLoop(Daemon& d) {
  fuse_session* se = d.session;
  ReceiveBuffer rb;
  fuse_buf fbuf{};
  while (!fuse_session_exited(se)) {
    fbuf.mem = rb.mem();
    fbuf.size = ReceiveBuffer::kCapacity;
    fbuf.flags = fuse_buf_flags(0);
    int res = fuse_session_receive_buf(se, &fbuf);
    if (res == -EINTR) continue;
    if (res <= 0) {
      if (res < 0) fuse_session_exit(se);
      return res;
    }
    keepInit(d, fbuf);
    fuse_session_process_buf(se, &fbuf);
  }
  return 0;
}

// Interrupts a worker's blocking read of the FUSE device (no SA_RESTART).
void onWake(int) {}

}  // namespace

void unmountOnce(Daemon& d) {
  if (d.unmounted.exchange(true)) return;
  // A session that took over a connection (mounted as /dev/fd/N) has no mount point in libfuse's eyes.
  if (d.resumeFuseFd >= 0)
    umount2(d.mountPoint.c_str(), MNT_DETACH);
  else
    fuse_session_unmount(d.session);
}

int fuseServe(Daemon& d) {
  struct sigaction sa{};
  sa.sa_handler = onWake;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  std::mutex mu;
  std::condition_variable cv;
  int running = kWorkers, error = 0;
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; i++) {
    workers.emplace_back([&] {
      int res;
      try {
        res = workerLoop(d);
      } catch (const PoolError& e) {
        fuse_session_exit(d.session);
        res = -e.err;
      }
      std::lock_guard l(mu);
      if (res < 0) error = res;
      running--;
      cv.notify_all();
    });
  }
  {
    // A signal or `close` only marks the session exited: then the mount
    // goes, and workers still blocked reading the device (the connection
    // lives on while anything holds the mount) are interrupted until all
    // have returned, as libfuse's own loop cancels them.
    std::unique_lock l(mu);
    while (running > 0) {
      cv.wait_for(l, std::chrono::milliseconds(100));
      if (!fuse_session_exited(d.session)) continue;
      l.unlock();
      unmountOnce(d);
      for (auto& w : workers) pthread_kill(w.native_handle(), SIGUSR1);
      l.lock();
    }
  }
  for (auto& w : workers) w.join();
  return error;
}

}  // namespace tp
