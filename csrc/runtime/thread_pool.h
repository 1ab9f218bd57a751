// A fixed pool of threads for data-parallel kernels. The calling thread takes part as thread 0.
//
// Between operations of one forward pass the workers spin (a decode step has ~150 operations of
// a few microseconds each, so waking threads through the OS on each would cost as much as the
// work); after about a millisecond without work they sleep on a condition variable.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace slm {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index) once on each of the size() threads and returns when all have
  // finished. fn must not throw. Not reentrant: one run() at a time.
  void run(const std::function<void(int)>& fn);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

// The half-open range of [0, n) that thread `index` of `n_threads` owns. Boundaries fall on
// multiples of `align` so that each thread's range starts on a kernel tile.
struct Range {
  int64_t begin;
  int64_t end;
};
Range split_range(int64_t n, int index, int n_threads, int64_t align);

}  // namespace slm
