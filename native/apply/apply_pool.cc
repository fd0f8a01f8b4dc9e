// ApplyPool: see apply_pool.h.
#include "apply/apply_pool.h"

#include <algorithm>
#include <functional>

namespace strata {

ApplyPool::ApplyPool(int rootFd, int threads) {
  for (int i = 0; i < threads; i++) workers_.push_back(std::make_unique<Worker>(rootFd));
  for (auto& w : workers_) w->thread = std::thread([this, p = w.get()] { Loop(p); });
}

ApplyPool::~ApplyPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  for (auto& w : workers_) w->cv.notify_one();
  for (auto& w : workers_) w->thread.join();
}

void ApplyPool::Dispatch(uint64_t seq, std::unique_ptr<ApplyOpRec> op, const struct iovec* bufs) {
  Worker* w = workers_[std::hash<std::string>{}(op->parent) % workers_.size()].get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    w->jobs.push_back({seq, std::move(op), bufs});
    pending_++;
  }
  w->cv.notify_one();
}

void ApplyPool::Loop(Worker* w) {
  std::vector<std::string> warnings;
  for (;;) {
    Job job;
    bool skip;
    {
      std::unique_lock<std::mutex> lock(mu_);
      w->cv.wait(lock, [&] { return stop_ || !w->jobs.empty(); });
      if (w->jobs.empty()) return;  // stopping
      job = std::move(w->jobs.front());
      w->jobs.pop_front();
      skip = failed_ && job.seq > failedSeq_;  // after a failure, later ops are not run
    }
    SysError e;
    bool ok = skip || w->fs.Run(*job.op, job.bufs, e, warnings);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& m : warnings) warnings_.emplace_back(job.seq, std::move(m));
    warnings.clear();
    if (!ok && (!failed_ || job.seq < failedSeq_)) {
      failed_ = true;
      failedSeq_ = job.seq;
      failure_ = e;
    }
    if (--pending_ == 0) idle_.notify_all();
  }
}

bool ApplyPool::Wait(SysError& e, std::vector<std::string>& warnings) {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return pending_ == 0; });
  std::stable_sort(warnings_.begin(), warnings_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& w : warnings_) warnings.push_back(std::move(w.second));
  warnings_.clear();
  if (!failed_) return true;
  e = failure_;
  return false;
}

void ApplyPool::DropCaches() {
  for (auto& w : workers_) w->fs.ForgetDirs();
}

}  // namespace strata
