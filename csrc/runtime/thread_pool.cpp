#include "runtime/thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SLM_CPU_RELAX() _mm_pause()
#else
#define SLM_CPU_RELAX() std::this_thread::yield()
#endif

namespace slm {

namespace {
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(1000);
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  for (auto& t : workers_) t.join();
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1);
  // seq_cst on both sides: either the worker sees the new generation before it sleeps, or we
  // see it counted among the sleepers and wake it.
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  fn(0);
  while (pending_.load(std::memory_order_acquire) != 0) SLM_CPU_RELAX();
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto spin_start = std::chrono::steady_clock::now();
    uint32_t spins = 0;
    uint64_t now_gen;
    while ((now_gen = generation_.load(std::memory_order_acquire)) == seen) {
      SLM_CPU_RELAX();
      if ((++spins & 255) == 0 && std::chrono::steady_clock::now() - spin_start > kSpinBeforeSleep) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
        sleepers_.fetch_sub(1);
        spin_start = std::chrono::steady_clock::now();
      }
    }
    seen = now_gen;
    if (stop_.load()) return;
    (*job_)(index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

Range split_range(int64_t n, int index, int n_threads, int64_t align) {
  if (align < 1) align = 1;
  const int64_t units = (n + align - 1) / align;
  const int64_t begin_unit = units * index / n_threads;
  const int64_t end_unit = units * (index + 1) / n_threads;
  Range r{begin_unit * align, end_unit * align};
  if (r.begin > n) r.begin = n;
  if (r.end > n) r.end = n;
  return r;
}

}  // namespace slm
