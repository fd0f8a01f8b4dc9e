// ApplyPool: worker threads that execute independent apply ops in parallel.
//
// TarApply marks an op independent (kOpParallel) only when nothing else
// in the layer can touch its name: the root was empty at the start, the
// name was not created (nor implied) before, and no ancestor was created as
// a non-directory. Such ops commute, so they may run in any order; ops with
// the same parent go to the same worker (one dir-fd cache each, and
// duplicates stay ordered). Every other op is a barrier: the applier waits
// for the pool to drain, runs it alone, and the workers' caches are dropped
// if it removed anything. The first failure by archive order is reported.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "apply/apply_fs.h"

namespace strata {

constexpr uint32_t kOpParallel = 0x100;  // flag on ApplyOpRec::op

class ApplyPool {
 public:
  ApplyPool(int rootFd, int threads);
  ~ApplyPool();
  // Queues op number `seq` (archive order); `bufs` must stay valid until Wait() returns.
  void Dispatch(uint64_t seq, std::unique_ptr<ApplyOpRec> op, const struct iovec* bufs);
  // Waits until every dispatched op is done. Returns false when one failed:
  // `e` is the failure with the lowest seq. Warnings are appended in seq order.
  bool Wait(SysError& e, std::vector<std::string>& warnings);
  // Drops every worker's directory cache (after a barrier op removed something).
  void DropCaches();

 private:
  struct Job {
    uint64_t seq;
    std::unique_ptr<ApplyOpRec> op;
    const struct iovec* bufs;
  };
  struct Worker {
    explicit Worker(int root) : fs(root) {}
    ApplyFs fs;
    std::deque<Job> jobs;
    std::condition_variable cv;
    std::thread thread;
  };
  void Loop(Worker* w);

  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex mu_;
  std::condition_variable idle_;
  size_t pending_ = 0;
  bool stop_ = false;
  bool failed_ = false;
  uint64_t failedSeq_ = 0;
  SysError failure_;
  std::vector<std::pair<uint64_t, std::string>> warnings_;
};

}  // namespace strata
