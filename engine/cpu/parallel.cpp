// The CPU backend's thread pool (see parallel.h).
//
// One job at a time (a mutex; a second caller that finds the pool busy runs its loop inline rather
// than wait). A job is published as one 64-bit word, state = seq:16 | chunks:24 | next:24, and a
// chunk is claimed by a compare-and-swap that bumps `next`: the claim depends on nothing but that
// word, so a worker that wakes late can never run a chunk of a job that is finished or not yet
// published. The job's function and context are read only after a successful claim; they cannot
// change then, because the caller rewrites them only after every chunk of the current job is
// done. `epoch` (32 bits, the futex word) is bumped after each publication to wake sleepers.
#include "engine/cpu/parallel.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define M1_CPU_RELAX() _mm_pause()
#else
#define M1_CPU_RELAX() std::this_thread::yield()
#endif

namespace m1::engine::cpu {
namespace {

constexpr int kChunkBits = 24;
constexpr uint64_t kChunkMask = (uint64_t(1) << kChunkBits) - 1;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end && *end == '\0' && n >= 0) ? int(n) : fallback;
}

int default_threads() {
  int n = env_int("M1_THREADS", 0);
  if (n <= 0) n = env_int("OMP_NUM_THREADS", 0);
  if (n <= 0) {
    cpu_set_t set;
    n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : int(std::thread::hardware_concurrency());
  }
  return std::clamp(n, 1, 1024);
}

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

thread_local bool t_in_chunk = false;  // nested parallel_for calls run inline

class Pool {
 public:
  explicit Pool(int threads) : threads_(threads), spin_(std::chrono::microseconds(env_int("M1_SPIN_US", 1000))) {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { worker(); });
  }
  ~Pool() {
    stop_.store(true);
    epoch_.fetch_add(1);
    futex_wake_all(&epoch_);
    for (auto& t : workers_) t.join();
  }
  int threads() const { return threads_; }

  void run(int64_t n, int64_t grain, void (*fn)(const void*, int64_t, int64_t), const void* ctx) {
    const int64_t chunks = (n + grain - 1) / grain;
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock() || chunks > int64_t(kChunkMask) || threads_ == 1) return inline_run(n, fn, ctx);
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    grain_.store(grain, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    seq_ = (seq_ + 1) & 0xffff;
    state_.store((seq_ << (2 * kChunkBits)) | (uint64_t(chunks) << kChunkBits), std::memory_order_seq_cst);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) futex_wake_all(&epoch_);
    work();
    // Wait for chunks other threads claimed. Spin first (they are short), then yield so that a
    // worker preempted mid-chunk on this core gets to finish it.
    int spins = 0;
    while (done_.load(std::memory_order_acquire) < chunks) {
      if (++spins < 4096) M1_CPU_RELAX();
      else sched_yield();
    }
  }

 private:
  static void inline_run(int64_t n, void (*fn)(const void*, int64_t, int64_t), const void* ctx) {
    const bool outer = t_in_chunk;
    t_in_chunk = true;
    fn(ctx, 0, n);
    t_in_chunk = outer;
  }

  // Claims and runs chunks of the published job until none is left.
  void work() {
    uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t chunks = (s >> kChunkBits) & kChunkMask, next = s & kChunkMask;
      if (next >= chunks) return;
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      const int64_t n = n_.load(std::memory_order_relaxed), grain = grain_.load(std::memory_order_relaxed);
      const int64_t lo = int64_t(next) * grain;
      t_in_chunk = true;
      fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), lo, std::min(n, lo + grain));
      t_in_chunk = false;
      done_.fetch_add(1, std::memory_order_release);
      s = state_.load(std::memory_order_acquire);
    }
  }

  void worker() {
    uint32_t seen = epoch_.load(std::memory_order_acquire);
    while (!stop_.load(std::memory_order_relaxed)) {
      // Spin for a new epoch, then sleep on it.
      const auto until = std::chrono::steady_clock::now() + spin_;
      uint32_t e;
      for (int i = 0;; ++i) {
        e = epoch_.load(std::memory_order_acquire);
        if (e != seen) break;
        if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) {
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          if (epoch_.load(std::memory_order_seq_cst) == seen) futex_wait(&epoch_, seen);
          sleepers_.fetch_sub(1, std::memory_order_seq_cst);
          i = 0;
          continue;
        }
        M1_CPU_RELAX();
      }
      seen = e;
      work();
    }
  }

  const int threads_;
  const std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  uint64_t seq_ = 0;
  alignas(64) std::atomic<uint64_t> state_{0};
  alignas(64) std::atomic<int64_t> done_{0};
  alignas(64) std::atomic<uint32_t> epoch_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::atomic<void (*)(const void*, int64_t, int64_t)> fn_{nullptr};
  std::atomic<const void*> ctx_{nullptr};
  std::atomic<int64_t> n_{0}, grain_{1};
};

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

int num_threads() { return pool().threads(); }

int64_t grain_for(int64_t n, int64_t min_grain, int per_thread) {
  const int64_t parts = int64_t(num_threads()) * std::max(1, per_thread);
  return std::max<int64_t>(std::max<int64_t>(1, min_grain), (n + parts - 1) / parts);
}

void parallel_for_raw(int64_t n, int64_t grain, void (*fn)(const void*, int64_t, int64_t), const void* ctx) {
  if (t_in_chunk) {  // nested: already on a pool thread (or inside the caller's share)
    fn(ctx, 0, n);
    return;
  }
  pool().run(n, grain, fn, ctx);
}

}  // namespace m1::engine::cpu
