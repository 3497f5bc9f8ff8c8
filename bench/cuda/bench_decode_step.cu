// Kernel lab: one decode step of "m1-block" (performance.md: 7 lightning + 1 softmax layer,
// hidden 6144, 64 heads x 128, 8 KV heads, 32 experts top-2 of width 9216, vocab 200064, bf16
// weights, random normal std 0.02) composed from the engine's CUDA kernels in the model's order
// (m1-model.md §3), captured as one CUDA graph and replayed. This is the kernel-level cost of a
// decode step, not yet the engine's (engine/model.cpp runs the same ops through the Backend).
// When the card cannot hold 8 layers' experts (an H100 holds ~6), the MoE weight sets are reused
// cyclically: each layer still reads its experts from HBM (10.9 GB per set >> L2).
// Floor: bytes of weights touched (attention + router + the chosen experts + lm_head) + lightning
// states read and written + K/V read, at the copy bandwidth measured in this run.
// Usage: bench_cuda_decode_step [batch ctx]...   (default: 1 1024, 1 16384, 1 65536, 32 4096)
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.h"
#include "engine/cuda/attention.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/lightning.h"
#include "engine/cuda/moe.h"
#include "engine/cuda/ops.h"

using namespace m1::bench;
using namespace m1::cuda;

namespace {

constexpr int kH = 6144, kNH = 64, kHD = 128, kA = kNH * kHD, kKV = 8, kE = 32, kTopK = 2, kI = 9216;
constexpr int kVocab = 200064, kLayers = 8, kPage = 64;
constexpr float kAlpha = 3.5565588f, kEps = 1e-5f;
constexpr double kMoeSetBytes = double(kE) * 3 * kI * kH * 2;

struct Layer {
  bool softmax = false;
  bf16 *in_norm, *post_norm, *attn_norm, *qkv, *gate, *out, *q, *k, *v, *o, *router;
  MoeExperts w1{}, w2{}, w3{};
};

bf16* W(size_t n, uint32_t seed, float mean = 0.f, float std = 0.02f) { return dev_random<bf16>(n, seed, std, mean); }

}  // namespace

int main(int argc, char** argv) {
  std::printf("device: %s\n", device_name().c_str());
  std::vector<std::pair<int, int>> cases;
  for (int i = 1; i + 1 < argc; i += 2) cases.push_back({std::atoi(argv[i]), std::atoi(argv[i + 1])});
  if (cases.empty()) cases = {{1, 1024}, {1, 16384}, {1, 65536}, {32, 4096}};
  const double bw = copy_gbps();
  std::printf("copy bandwidth %.0f GB/s\n", bw);

  // ---- weights ----
  size_t free_b = 0, total_b = 0;
  M1_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double attn_bytes = 7.0 * (3.0 * kA + 2.0 * kA) * kH * 2 + (kA + 2.0 * kKV * kHD + kA) * kH * 2;
  const double reserve = 12e9 + 2.0 * kVocab * kH + attn_bytes;  // KV, activations, lm_head, attention
  const int moe_sets = std::max(1, std::min(kLayers, int((double(free_b) - reserve) / kMoeSetBytes)));
  std::printf("MoE weight sets: %d distinct of %d layers (%.1f GB free at start)\n", moe_sets, kLayers, free_b / 1e9);
  std::vector<Layer> L(kLayers);
  std::vector<std::vector<void*>> sets(moe_sets);
  uint32_t seed = 1000;
  for (int l = 0; l < kLayers; ++l) {
    Layer& y = L[l];
    y.softmax = (l == kLayers - 1);
    y.in_norm = W(kH, seed++, 1.f, 0.1f);
    y.post_norm = W(kH, seed++, 1.f, 0.1f);
    y.router = W((size_t)kE * kH, seed++);
    if (!y.softmax) {
      y.attn_norm = W(kA, seed++, 1.f, 0.1f);
      y.qkv = W((size_t)3 * kA * kH, seed++);
      y.gate = W((size_t)kA * kH, seed++);
      y.out = W((size_t)kH * kA, seed++);
    } else {
      y.q = W((size_t)kA * kH, seed++);
      y.k = W((size_t)kKV * kHD * kH, seed++);
      y.v = W((size_t)kKV * kHD * kH, seed++);
      y.o = W((size_t)kH * kA, seed++);
    }
    const int s = l % moe_sets;
    if (sets[s].empty())
      for (int e = 0; e < kE; ++e)
        for (int m = 0; m < 3; ++m) sets[s].push_back(W((size_t)kI * kH, seed++));
    for (int e = 0; e < kE; ++e) {
      y.w1.w[e] = sets[s][3 * e];
      y.w3.w[e] = sets[s][3 * e + 1];
      y.w2.w[e] = sets[s][3 * e + 2];
    }
  }
  bf16* final_norm = W(kH, seed++, 1.f, 0.1f);
  bf16* lm_head = W((size_t)kVocab * kH, seed++);
  HeadSlopes slopes[kLayers];
  for (int l = 0; l < kLayers; ++l)
    for (int h = 0; h < kNH; ++h)
      slopes[l].v[h] = float(std::pow(2.0, -8.0 * (h + 1) / kNH) * (1.0 - double(l) / (kLayers - 1) + 1e-5));
  Gemm gemm;

  for (const auto& cs : cases)
   for (int gemv : {1, 0}) {  // dense decode products through the GEMV, then through cuBLASLt
    if (!gemv && cs.first > 4) continue;  // batch > 4 always takes cuBLASLt
    gemm.set_gemv_rows(gemv ? 4 : 0);
    const int B = cs.first, ctx = cs.second;
    // ---- per-case state: lightning states, KV pages, activations ----
    const int pages_per = (ctx + kPage) / kPage;
    const size_t page_elems = 2ull * kPage * kKV * kHD;
    float* kvpool = dev_random<float>((size_t)B * pages_per * page_elems, 77, 1.f);
    std::vector<float*> table((size_t)B * pages_per);
    for (size_t i = 0; i < table.size(); ++i) table[i] = kvpool + i * page_elems;
    float** dtable;
    M1_CUDA_CHECK(cudaMalloc(&dtable, table.size() * sizeof(float*)));
    M1_CUDA_CHECK(cudaMemcpy(dtable, table.data(), table.size() * sizeof(float*), cudaMemcpyHostToDevice));
    PagedKV<float> kv{dtable, pages_per, kPage, kKV, kHD};
    std::vector<float*> states((size_t)(kLayers - 1) * B);
    for (size_t i = 0; i < states.size(); ++i) states[i] = dev_random<float>((size_t)kNH * kHD * kHD, 500 + i, 0.01f);
    std::vector<int> qs(B), ql(B, ctx + 1);
    std::vector<int64_t> pos(B, ctx);
    for (int b = 0; b < B; ++b) qs[b] = b;
    int *dqs, *dql;
    int64_t* dpos;
    M1_CUDA_CHECK(cudaMalloc(&dqs, B * 4));
    M1_CUDA_CHECK(cudaMalloc(&dql, B * 4));
    M1_CUDA_CHECK(cudaMalloc(&dpos, B * 8));
    M1_CUDA_CHECK(cudaMemcpy(dqs, qs.data(), B * 4, cudaMemcpyHostToDevice));
    M1_CUDA_CHECK(cudaMemcpy(dql, ql.data(), B * 4, cudaMemcpyHostToDevice));
    M1_CUDA_CHECK(cudaMemcpy(dpos, pos.data(), B * 8, cudaMemcpyHostToDevice));
    void* ws;
    M1_CUDA_CHECK(cudaMalloc(&ws, attention_workspace_bytes(B, kNH, kHD, ctx + 1)));
    float* x = dev_random<float>((size_t)B * kH, 9, 1.f);
    float *a, *big, *o, *g, *y, *m, *e, *logits, *moe_f, *lm;
    M1_CUDA_CHECK(cudaMalloc(&a, (size_t)B * kH * 4));
    M1_CUDA_CHECK(cudaMalloc(&big, (size_t)B * 3 * kA * 4));
    M1_CUDA_CHECK(cudaMalloc(&o, (size_t)B * kA * 4));
    M1_CUDA_CHECK(cudaMalloc(&g, (size_t)B * kA * 4));
    M1_CUDA_CHECK(cudaMalloc(&y, (size_t)B * kH * 4));
    M1_CUDA_CHECK(cudaMalloc(&m, (size_t)B * kH * 4));
    M1_CUDA_CHECK(cudaMalloc(&e, (size_t)B * kH * 4));
    M1_CUDA_CHECK(cudaMalloc(&logits, (size_t)B * kE * 4));
    M1_CUDA_CHECK(cudaMalloc(&moe_f, (size_t)B * kTopK * (kI + kH + 2) * 4 + 4096));
    M1_CUDA_CHECK(cudaMalloc(&lm, (size_t)B * kVocab * 4));
    int32_t *ids, *off, *act, *sorted;
    M1_CUDA_CHECK(cudaMalloc(&ids, (size_t)B * kTopK * 4));
    M1_CUDA_CHECK(cudaMalloc(&off, (kE + 1) * 4));
    M1_CUDA_CHECK(cudaMalloc(&act, (kE + 1) * 4));
    M1_CUDA_CHECK(cudaMalloc(&sorted, (size_t)B * kTopK * 4));
    bf16* cast;
    M1_CUDA_CHECK(cudaMalloc(&cast, (size_t)B * kA * 2));
    float* tw = moe_f;
    float* h = moe_f + 1024;  // 4 KB offset keeps 16-byte alignment
    float* ye = h + (size_t)B * kTopK * kI;
    std::vector<int32_t> all_ids;  // experts chosen per layer (read back after a run, for the floor)

    cudaStream_t st;
    M1_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    auto step = [&](cudaStream_t s) {
      rmsnorm(x, L[0].in_norm, WDType::BF16, kEps, a, B, kH, s);
      int lslot = 0;
      for (int l = 0; l < kLayers; ++l) {
        const Layer& Y = L[l];
        if (!Y.softmax) {
          gemm.run(a, Y.qkv, WDType::BF16, big, B, 3 * kA, kH, false, cast, s);
          StatePtrs sp{};
          for (int b = 0; b < B; ++b) sp.p[b] = states[(size_t)lslot * B + b];
          lightning_decode<float>(big, sp, slopes[l], o, B, kNH, kHD, true, s);  // SiLU fused
          rmsnorm(o, Y.attn_norm, WDType::BF16, 1e-6f, o, B, kA, s);
          gemm.run(a, Y.gate, WDType::BF16, g, B, kA, kH, false, cast, s);
          sigmoid_mul(g, o, (int64_t)B * kA, o, s);
          gemm.run(o, Y.out, WDType::BF16, y, B, kH, kA, false, cast, s);
          ++lslot;
        } else {
          float* q = big;
          float* k = q + (size_t)B * kA;
          float* v = k + (size_t)B * kKV * kHD;
          gemm.run(a, Y.q, WDType::BF16, q, B, kA, kH, false, cast, s);
          gemm.run(a, Y.k, WDType::BF16, k, B, kKV * kHD, kH, false, cast, s);
          gemm.run(a, Y.v, WDType::BF16, v, B, kKV * kHD, kH, false, cast, s);
          rope_neox(q, dpos, B, kNH, kHD, 64, 1e7f, s);
          rope_neox(k, dpos, B, kKV, kHD, 64, 1e7f, s);
          for (int b = 0; b < B; ++b)
            kv_append<float>(k + (size_t)b * kKV * kHD, v + (size_t)b * kKV * kHD, kKV * kHD, 1, b, ctx, kv, s);
          attention_paged<float>(q, kA, dqs, dql, B, kNH, ctx + 1, kv, 1.f / std::sqrt(128.f), o, ws, s);
          gemm.run(o, Y.o, WDType::BF16, y, B, kH, kA, false, cast, s);
        }
        // m = RMSNorm_post(alpha a + beta attn)
        rmsnorm_residual(a, y, kAlpha, 1.f, Y.post_norm, WDType::BF16, kEps, m, nullptr, B, kH, s);
        gemm.run(m, Y.router, WDType::BF16, logits, B, kE, kH, false, cast, s);
        moe_route(logits, B, kE, kTopK, tw, ids, off, act, sorted, s);
        if (s == nullptr) {  // recording the experts chosen (first, uncaptured run only)
          std::vector<int32_t> hid((size_t)B * kTopK);
          M1_CUDA_CHECK(cudaMemcpy(hid.data(), ids, hid.size() * 4, cudaMemcpyDeviceToHost));
          std::set<int32_t> u(hid.begin(), hid.end());
          all_ids.push_back((int32_t)u.size());
        }
        moe_experts_gate_up(m, kTopK, Y.w1, Y.w3, WDType::BF16, kE, off, act, sorted, (int64_t)B * kTopK, h, kI, kH, s);
        moe_experts_down(h, Y.w2, WDType::BF16, kE, off, act, sorted, (int64_t)B * kTopK, ye, kH, kI, s);
        moe_combine(ye, tw, B, kTopK, kH, e, s);
        // next layer's input norm over alpha m + beta moe (the last layer: the final norm)
        rmsnorm_residual(m, e, kAlpha, 1.f, l + 1 < kLayers ? L[l + 1].in_norm : final_norm, WDType::BF16, kEps, a,
                         nullptr, B, kH, s);
      }
      gemm.run(a, lm_head, WDType::BF16, lm, B, kVocab, kH, false, cast, s);
    };
    step(nullptr);  // eager run: plans made, experts recorded
    M1_CUDA_CHECK(cudaDeviceSynchronize());
    const auto lmh = download_f(lm, (size_t)B * kVocab);
    bool finite = true;
    for (float v : lmh) finite = finite && std::isfinite(v);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    M1_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    step(st);
    M1_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
    M1_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    const double ms = time_ms([&] { M1_CUDA_CHECK(cudaGraphLaunch(exec, st)); M1_CUDA_CHECK(cudaStreamSynchronize(st)); },
                              20, 3, false);
    double bytes = attn_bytes + (double)kLayers * kE * kH * 2 + 2.0 * kVocab * kH;
    for (int u : all_ids) bytes += u * 3.0 * kI * kH * 2;
    bytes += (double)(kLayers - 1) * B * kNH * kHD * kHD * 8;  // states read + written
    bytes += (double)B * (ctx + 1) * kKV * kHD * 2 * 4;         // fp32 K and V read
    const double floor_ms = bytes / (bw * 1e9) * 1e3;
    double experts = 0;
    for (int u : all_ids) experts += u;
    row(gemv ? "m1-block decode step" : "m1-block step (cuBLASLt)", "B=" + std::to_string(B) + " ctx=" + std::to_string(ctx) + (finite ? "" : " NONFINITE!"),
        ms * 1e3, fmt("%.0f tok/s", B / (ms * 1e-3)), fmt("%.2fx floor", ms / floor_ms));
    std::printf("JSON {\"op\":\"m1_block_decode\",\"B\":%d,\"ctx\":%d,\"ms\":%.4f,\"floor_ms\":%.4f,\"bytes\":%.4g,"
                "\"experts_per_layer\":%.2f,\"moe_sets\":%d,\"gemv\":%d,\"finite\":%s}\n",
                B, ctx, ms, floor_ms, bytes, experts / kLayers, moe_sets, gemv, finite ? "true" : "false");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(st);
    for (void* p : {(void*)kvpool, (void*)dtable, (void*)dqs, (void*)dql, (void*)dpos, ws, (void*)x, (void*)a, (void*)big,
                    (void*)o, (void*)g, (void*)y, (void*)m, (void*)e, (void*)logits, (void*)moe_f, (void*)lm, (void*)ids,
                    (void*)off, (void*)act, (void*)sorted, (void*)cast})
      cudaFree(p);
    for (float* s : states) cudaFree(s);
  }
  return 0;
}
