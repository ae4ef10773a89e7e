#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kx::cpu {

namespace {

// How long a worker that finished a job polls for the next before it sleeps (see
// spin_until_new_job): KEXUE_SPIN_US, default 50.
int64_t spin_micros() {
  static const int64_t us = [] {
    const char* env = std::getenv("KEXUE_SPIN_US");
    return env && *env ? std::max<int64_t>(0, std::atoll(env)) : 50;
  }();
  return us;
}

int default_threads() {
  if (const char* env = std::getenv("KEXUE_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? (int)hw : 1;
}

// Workers wait for a job generation; each job hands out chunk indices through an atomic counter.
class Pool {
 public:
  explicit Pool(int threads) { start(threads); }
  ~Pool() { stop(); }

  // Read without a lock by any thread (parallel_for sizes its chunks with it); written by resize.
  int size() const { return size_.load(std::memory_order_relaxed); }

  // Called with g_run_mu held (no region running). Keeps the workers when the count is unchanged.
  void resize(int threads) {
    if (threads == size()) return;
    stop();
    start(threads);
  }

  void run(int64_t chunks, const std::function<void(int64_t)>& task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = &task;
      chunks_ = chunks;
      next_.store(0);
      pending_.store(chunks);
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
      if (sleeping_ > 0) cv_.notify_all();  // workers still spinning see the generation without a wake-up
    }
    drain();
    // The caller, done with its chunks, polls for the others' too before it sleeps: a wake-up
    // costs more than the chunk of a small op.
    spin_while([this] { return pending_.load(std::memory_order_acquire) != 0; });
    if (pending_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void start(int threads) {
    stopping_ = false;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
    size_.store(threads, std::memory_order_relaxed);
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      spin_until_new_job(seen);
      {
        std::unique_lock<std::mutex> lock(mu_);
        ++sleeping_;
        cv_.wait(lock, [&] { return stopping_ || generation_.load(std::memory_order_relaxed) != seen; });
        --sleeping_;
        if (stopping_) return;
        seen = generation_.load(std::memory_order_relaxed);
      }
      drain();
    }
  }

  // A worker that just finished a job polls for the next one for spin_micros() before it sleeps:
  // the ops of a forward follow each other within microseconds, and a sleeping worker costs each
  // region a futex wake-up (~30 us, as long as a small op). Bounded, so that an idle process stops
  // using the core almost at once (test/idle_threads.test.ts).
  void spin_until_new_job(uint64_t seen) {
    spin_while([&] {
      return generation_.load(std::memory_order_acquire) == seen && !stopping_.load(std::memory_order_relaxed);
    });
  }

  // Polls `busy` until it is false or spin_micros() have passed.
  template <class F>
  static void spin_while(F&& busy) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_micros());
    while (busy()) {
      for (int i = 0; i < 64; ++i) cpu_relax();
      if (std::chrono::steady_clock::now() >= until) return;
    }
  }

  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  // Takes chunks until none are left; the last one to finish wakes the caller.
  void drain() {
    for (;;) {
      const int64_t i = next_.fetch_add(1);
      if (i >= chunks_) return;
      try {
        (*task_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);  // the caller checks pending_ under it before it sleeps
        done_cv_.notify_all();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::atomic<int> size_{1};
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* task_ = nullptr;
  int64_t chunks_ = 0;
  std::atomic<int64_t> pending_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> generation_{0};
  int sleeping_ = 0;  // workers waiting on cv_ (under mu_)
  std::atomic<bool> stopping_{false};  // atomic: spinning workers read it without the lock
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

thread_local bool t_inside = false;
// One parallel region at a time, process-wide. Several JS threads (the main thread and worker
// threads, each with the addon loaded) may call kernels at once: a caller that finds the pool busy
// waits for the running region to end (a kernel's loop: microseconds to milliseconds) and then has
// every worker, rather than oversubscribing the cores. Nested calls never take it (t_inside), so a
// region cannot wait for itself.
std::mutex g_run_mu;

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(g_run_mu);  // waits for the running region
  pool().resize(std::max(1, n));
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int64_t chunks = std::min<int64_t>(max_chunks, num_threads());
  if (chunks <= 1 || t_inside) {
    fn(0, n);
    return;
  }
  const int64_t per = (n + chunks - 1) / chunks;
  std::lock_guard<std::mutex> lock(g_run_mu);  // waits while another thread's region runs
  pool().run(chunks, [&](int64_t c) {
    const bool was_inside = t_inside;
    t_inside = true;
    const int64_t b = c * per, e = std::min(n, b + per);
    if (b < e) fn(b, e);
    t_inside = was_inside;
  });
}

}  // namespace kx::cpu
