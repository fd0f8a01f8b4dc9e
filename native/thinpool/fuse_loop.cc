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

#include <cerrno>
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
    mem_ = static_cast<uint8_t*>(region_) + kDirectAlign - kWriteHeader;
  }
  ~ReceiveBuffer() { munmap(region_, kRegion); }
  ReceiveBuffer(const ReceiveBuffer&) = delete;
  ReceiveBuffer& operator=(const ReceiveBuffer&) = delete;
  uint8_t* mem() const { return mem_; }
  static constexpr size_t kCapacity = kReceiveBytes;

 private:
  static constexpr size_t kRegion = kDirectAlign + kReceiveBytes;
  void* region_;
  uint8_t* mem_;
};

// Returns 0 when the session ends (unmounted), a negative errno on failure.
int workerLoop(fuse_session* se) {
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
    fuse_session_process_buf(se, &fbuf);
  }
  return 0;
}

// Interrupts a worker's blocking read of the FUSE device (no SA_RESTART).
void onWake(int) {}

}  // namespace

void unmountOnce(Daemon& d) {
  if (!d.unmounted.exchange(true)) fuse_session_unmount(d.session);
}

int fuseServe(Daemon& d) {
  struct sigaction sa = {};
  sa.sa_handler = onWake;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  std::mutex mu;
  std::condition_variable cv;
  int running = kWorkers, error = 0;
  std::vector<std::thread> workers;
  workers.reserve(kWorkers);
  for (int i = 0; i < kWorkers; i++) {
    workers.emplace_back([&] {
      int res;
      try {
        res = workerLoop(d.session);
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
