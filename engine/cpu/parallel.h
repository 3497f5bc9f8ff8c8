// The CPU backend's threads: one process-wide pool and parallel_for over it.
// defines: num_threads, parallel_for, grain_for.
//
// Why not OpenMP: a batch-1 decode step is ~60-100 small ops, each worth a few microseconds to a
// few milliseconds. OpenMP's `parallel for` ends in a barrier that waits for every thread to
// arrive: on a machine where another process holds a core, one descheduled worker stalls the op
// for a whole scheduler time slice (measured on 2 cores: the tiny model's lm_head GEMV took 24 ms
// per call at load 5 under OpenMP, 3 ms at load 8 here). Here chunks are claimed one at a time
// from a shared counter and the call returns when every chunk is done, not when every worker has
// checked in: a worker that is not running simply claims nothing and the caller does its share.
// Workers spin for a while after each job, then sleep on a futex, so an idle engine holds no core.
// The spin (M1_SPIN_US, default 1000) covers the gaps inside a decode step: waking a sleeping
// thread takes a system call and tens of microseconds, and a worker that wakes late leaves its
// share to the caller (tiny model on 16 cores: 0.88 ms/token with a 100 us spin, 0.55-0.69 ms
// with 1 ms). M1_THREADS sets the thread count (default: the CPUs this process may run on;
// OMP_NUM_THREADS is honored too).
#pragma once
#include <cstdint>

namespace m1::engine::cpu {

// Threads parallel_for uses, the caller included (>= 1).
int num_threads();

// Raw form: runs fn(ctx, lo, hi) over [0, n) in chunks of `grain` items (the last one shorter).
void parallel_for_raw(int64_t n, int64_t grain, void (*fn)(const void* ctx, int64_t lo, int64_t hi),
                      const void* ctx);

// Runs f(lo, hi) for consecutive chunks [lo, hi) of [0, n), each of `grain` items (the last may be
// shorter), on the pool; the caller takes part and the call returns when all are done. One chunk
// (n <= grain), one thread, or a call from inside a chunk runs inline on the calling thread, so
// the grain is also the "too small to split" threshold. Each item must be computed the same way
// whichever thread runs it: results never depend on the thread count.
template <class F>
void parallel_for(int64_t n, int64_t grain, const F& f) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain) return f(int64_t(0), n);
  parallel_for_raw(n, grain, [](const void* c, int64_t lo, int64_t hi) { (*static_cast<const F*>(c))(lo, hi); }, &f);
}

// A grain that splits n items into about `per_thread` chunks per thread, but never chunks smaller
// than `min_grain` items (below that a chunk costs more to hand over than to compute).
int64_t grain_for(int64_t n, int64_t min_grain, int per_thread = 4);

}  // namespace m1::engine::cpu
