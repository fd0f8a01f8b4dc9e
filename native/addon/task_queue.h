// TaskQueue: what a native object with its own thread (the applier, a codec)
// hands that thread: pointers, taken in the order they were pushed; Pop
// blocks until one is there. nullptr is a valid item (the usual "stop").
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>

namespace strata {

template <typename T>
class TaskQueue {
 public:
  void Push(T* item) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      items_.push_back(item);
    }
    cv_.notify_one();
  }

  T* Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !items_.empty(); });
    T* item = items_.front();
    items_.pop_front();
    return item;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T*> items_;
};

}  // namespace strata
