// GPU sampling (see sampling.h). Greedy is one pass: each thread keeps the best (value, -id) packed
// in 64 bits, blocks combine with atomicMax. A draw: max (same pass) -> probabilities and per-block
// double sums (fixed order: deterministic) -> normalize -> stable radix sort by probability
// descending (ties keep id order, as the CPU comparator) -> per-tile double sums of the sorted
// masses -> one block finds the top-p cut, the min-p cut (binary search: the order is sorted) and
// the tile where the cumulative mass crosses u * mass, then scans that tile.
#include <algorithm>
#include <climits>
#include <cstdio>

#include <cub/cub.cuh>

#include "engine/cuda/sampling.h"

namespace m1::cuda {
namespace {

constexpr int kTile = 1024;        // elements per sorted-mass tile (one select-block scan)
constexpr int kMaxTiles = 2048;    // vocabularies up to 2M ids
constexpr int kProbThreads = 256;  // probability blocks: 1024 elements each

__device__ __forceinline__ unsigned long long pack_max(float v, int i) {
  uint32_t b = __float_as_uint(v);
  b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);  // order-preserving map of floats to unsigned
  return ((unsigned long long)b << 32) | (unsigned long long)(0xFFFFFFFFu - (uint32_t)i);
}
__device__ __forceinline__ float unpack_value(unsigned long long k) {
  uint32_t b = (uint32_t)(k >> 32);
  b = (b & 0x80000000u) ? (b & 0x7FFFFFFFu) : ~b;
  return __uint_as_float(b);
}
__device__ __forceinline__ bool allowed(const SampleParams& p, int i) {
  return !p.mask || (i < p.mask_len && p.mask[i]);
}

__global__ void argmax_kernel(const float* __restrict__ logits, SampleParams p, unsigned long long* best) {
  unsigned long long mine = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < p.V; i += gridDim.x * blockDim.x) {
    const float v = allowed(p, i) ? logits[i] : -INFINITY;
    const unsigned long long k = pack_max(v, i);
    mine = k > mine ? k : mine;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long other = __shfl_xor_sync(0xffffffffu, mine, o);
    mine = other > mine ? other : mine;
  }
  if ((threadIdx.x & 31) == 0) atomicMax(best, mine);
}

__global__ void argmax_finish_kernel(const unsigned long long* best, int32_t* out) {
  *out = (int32_t)(0xFFFFFFFFu - (uint32_t)(*best & 0xFFFFFFFFull));
}

// Block b covers elements [1024 b, 1024 b + 1024): e = float(exp(double(l - max) / T)), part[b] = sum.
__global__ void __launch_bounds__(kProbThreads) probs_kernel(const float* __restrict__ logits, SampleParams p,
                                                             const unsigned long long* best, float* __restrict__ e,
                                                             int32_t* __restrict__ idx, double* __restrict__ part) {
  using Reduce = cub::BlockReduce<double, kProbThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const float mx = unpack_value(*best);
  double s = 0;
  for (int k = threadIdx.x; k < kTile; k += kProbThreads) {
    const int i = blockIdx.x * kTile + k;
    if (i >= p.V) break;
    const float w = allowed(p, i) ? logits[i] : -INFINITY;
    const float v = (float)exp((double)(w - mx) / (double)p.temperature);
    e[i] = v;
    idx[i] = i;
    s += (double)v;
  }
  const double total = Reduce(tmp).Sum(s);
  if (threadIdx.x == 0) part[blockIdx.x] = total;
}

__global__ void __launch_bounds__(kProbThreads) normalize_kernel(float* __restrict__ e, int V,
                                                                 const double* __restrict__ part, int nparts) {
  __shared__ double sum;
  if (threadIdx.x == 0) {
    double s = 0;
    for (int b = 0; b < nparts; ++b) s += part[b];
    sum = s;
  }
  __syncthreads();
  for (int k = threadIdx.x; k < kTile; k += kProbThreads) {
    const int i = blockIdx.x * kTile + k;
    if (i < V) e[i] = (float)((double)e[i] / sum);
  }
}

__global__ void __launch_bounds__(kProbThreads) tile_sums_kernel(const float* __restrict__ ps, int V,
                                                                 double* __restrict__ tsum) {
  using Reduce = cub::BlockReduce<double, kProbThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  double s = 0;
  for (int k = threadIdx.x; k < kTile; k += kProbThreads) {
    const int i = blockIdx.x * kTile + k;
    if (i < V) s += (double)ps[i];
  }
  const double total = Reduce(tmp).Sum(s);
  if (threadIdx.x == 0) tsum[blockIdx.x] = total;
}

using SelectScan = cub::BlockScan<double, kTile>;

// First i in [b, e) with base + sum(ps[b..i]) > target (strict) or >= target; -1 when none.
// Called by the whole block.
__device__ int first_crossing(const float* ps, int b, int e, double base, double target, bool strict,
                              SelectScan::TempStorage& tmp, int& found) {
  const int t = threadIdx.x;
  const double v = b + t < e ? (double)ps[b + t] : 0.0;
  double incl;
  SelectScan(tmp).InclusiveSum(v, incl);
  if (t == 0) found = INT_MAX;
  __syncthreads();
  if (b + t < e) {
    const double c = base + incl;
    if (strict ? c > target : c >= target) atomicMin(&found, t);
  }
  __syncthreads();
  const int f = found;
  __syncthreads();
  return f == INT_MAX ? -1 : b + f;
}

__global__ void __launch_bounds__(kTile) select_kernel(const float* __restrict__ ps, const int32_t* __restrict__ is,
                                                       const double* __restrict__ tsum, int ntiles, SampleParams p,
                                                       int32_t* out) {
  __shared__ SelectScan::TempStorage tmp;
  __shared__ double TP[kMaxTiles + 1];
  __shared__ int s_tile, s_found;
  __shared__ double s_sum;
  const int t = threadIdx.x;
  if (t == 0) {
    double run = 0;
    for (int j = 0; j < ntiles; ++j) {
      TP[j] = run;
      run += tsum[j];
    }
    TP[ntiles] = run;
  }
  __syncthreads();
  int keep = p.top_k > 0 ? min(p.V, p.top_k) : p.V;
  if (p.top_p < 1.f) {  // smallest prefix whose mass reaches top_p (at most keep)
    if (t == 0) {
      int j = 0;
      for (; j < ntiles; ++j) {
        if (j * kTile >= keep) { j = ntiles; break; }
        const bool full = (j + 1) * kTile <= keep;
        if (!full || TP[j] + tsum[j] >= (double)p.top_p) break;
      }
      s_tile = j < ntiles ? j : -1;
    }
    __syncthreads();
    int n = keep;
    const int j = s_tile;
    if (j >= 0) {
      const int i = first_crossing(ps, j * kTile, min((j + 1) * kTile, keep), TP[j], (double)p.top_p, false, tmp, s_found);
      if (i >= 0) n = i + 1;
    }
    keep = max(1, n);
  }
  if (p.min_p > 0.f) {  // keep p >= min_p * p_max: a prefix of the sorted order
    const float fl = p.min_p * ps[0];
    int lo = 1, hi = keep;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (ps[mid] >= fl) lo = mid + 1; else hi = mid;
    }
    keep = lo;
  }
  // Mass of the kept prefix, then the draw r = u * mass.
  const int jk = (keep - 1) / kTile;
  {
    const int i = jk * kTile + t;
    const double v = i < keep ? (double)ps[i] : 0.0;
    double incl;
    SelectScan(tmp).InclusiveSum(v, incl);
    if (t == kTile - 1) s_sum = incl;
    __syncthreads();
  }
  const double mass = TP[jk] + s_sum;
  const double r = p.u * mass;
  if (t == 0) {
    int j = 0;
    while (j < jk && TP[j] + tsum[j] <= r) ++j;
    s_tile = j;
  }
  __syncthreads();
  const int j = s_tile, e = min((j + 1) * kTile, keep);
  const int i = first_crossing(ps, j * kTile, e, TP[j], r, true, tmp, s_found);
  if (t == 0) *out = is[i >= 0 ? i : e - 1];
}

struct Layout {
  size_t best, e, idx, es, is, part, tsum, cub, cub_bytes, total;
  int nblocks;
};
size_t al256(size_t n) { return (n + 255) / 256 * 256; }
Layout layout(int V) {
  Layout l{};
  l.nblocks = (V + kTile - 1) / kTile;
  size_t off = 0;
  l.best = off, off += al256(8);
  l.e = off, off += al256(size_t(V) * 4);
  l.idx = off, off += al256(size_t(V) * 4);
  l.es = off, off += al256(size_t(V) * 4);
  l.is = off, off += al256(size_t(V) * 4);
  l.part = off, off += al256(size_t(l.nblocks) * 8);
  l.tsum = off, off += al256(size_t(l.nblocks) * 8);
  size_t cub_bytes = 0;
  cub::DeviceRadixSort::SortPairsDescending(nullptr, cub_bytes, (const float*)nullptr, (float*)nullptr,
                                            (const int32_t*)nullptr, (int32_t*)nullptr, V);
  l.cub = off, l.cub_bytes = cub_bytes, off += al256(cub_bytes);
  l.total = off;
  return l;
}

void check(const SampleParams& p) {
  if (p.V <= 0 || (p.V + kTile - 1) / kTile > kMaxTiles) {
    std::fprintf(stderr, "sampling: vocabulary %d unsupported (1..%d)\n", p.V, kTile * kMaxTiles);
    std::abort();
  }
}

void launch_max(const float* logits, const SampleParams& p, unsigned long long* best, cudaStream_t stream) {
  M1_CUDA_CHECK(cudaMemsetAsync(best, 0, 8, stream));
  const int blocks = std::min(264, (p.V + 255) / 256);
  argmax_kernel<<<blocks, 256, 0, stream>>>(logits, p, best);
  M1_CUDA_CHECK_LAUNCH();
}

}  // namespace

size_t sample_workspace_bytes(int V) { return layout(V).total; }

void sample_argmax(const float* logits, const SampleParams& p, int32_t* out_id, void* ws, cudaStream_t stream) {
  check(p);
  auto* best = reinterpret_cast<unsigned long long*>(static_cast<char*>(ws) + layout(p.V).best);
  launch_max(logits, p, best, stream);
  argmax_finish_kernel<<<1, 1, 0, stream>>>(best, out_id);
  M1_CUDA_CHECK_LAUNCH();
}

void sample_distribution(const float* logits, const SampleParams& p, int32_t* out_id, void* ws, cudaStream_t stream) {
  check(p);
  const Layout l = layout(p.V);
  char* w = static_cast<char*>(ws);
  auto* best = reinterpret_cast<unsigned long long*>(w + l.best);
  float* e = reinterpret_cast<float*>(w + l.e);
  int32_t* idx = reinterpret_cast<int32_t*>(w + l.idx);
  float* es = reinterpret_cast<float*>(w + l.es);
  int32_t* is = reinterpret_cast<int32_t*>(w + l.is);
  double* part = reinterpret_cast<double*>(w + l.part);
  double* tsum = reinterpret_cast<double*>(w + l.tsum);
  launch_max(logits, p, best, stream);
  probs_kernel<<<l.nblocks, kProbThreads, 0, stream>>>(logits, p, best, e, idx, part);
  M1_CUDA_CHECK_LAUNCH();
  normalize_kernel<<<l.nblocks, kProbThreads, 0, stream>>>(e, p.V, part, l.nblocks);
  M1_CUDA_CHECK_LAUNCH();
  size_t cub_bytes = l.cub_bytes;
  M1_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(w + l.cub, cub_bytes, e, es, idx, is, p.V, 0, 32, stream));
  tile_sums_kernel<<<l.nblocks, kProbThreads, 0, stream>>>(es, p.V, tsum);
  M1_CUDA_CHECK_LAUNCH();
  select_kernel<<<1, kTile, 0, stream>>>(es, is, tsum, l.nblocks, p, out_id);
  M1_CUDA_CHECK_LAUNCH();
}

}  // namespace m1::cuda
