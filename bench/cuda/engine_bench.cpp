// The CUDA engine benchmark (see engine_bench.h). Floors: decode = bytes a batch-1 step must read
// (every dense weight, the router, top_k experts per layer, the lm_head, one embedding row, the
// lightning states read and written, the fp32 K/V of the context) / the copy bandwidth measured
// here; prefill = FLOPs (2 x active parameters per token + lightning state products + causal
// softmax attention) / the bf16 GEMM rate measured here.
#include "bench/cuda/engine_bench.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>

#include "engine/checkpoint.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/ops.h"
#include "engine/model.h"
#include "engine/model_init.h"

namespace m1::bench {
namespace {

using engine::ModelConfig;
using Clock = std::chrono::steady_clock;
double secs(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

#define BENCH_CHECK(call)                                                                            \
  do {                                                                                               \
    cudaError_t e_ = (call);                                                                         \
    if (e_ != cudaSuccess) return make_error(std::string(#call) + ": " + cudaGetErrorString(e_));    \
  } while (0)

// Median of `reps` event-timed runs after `warm` runs, in ms.
template <class F>
double median_ms(F&& fn, int reps, int warm) {
  for (int i = 0; i < warm; ++i) fn();
  cudaDeviceSynchronize();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a);
    fn();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Ceilings {
  double copy_GBps = 0, gemm_TFLOPs = 0;
};

// 1 GiB device copy (bytes read + written) and an 8192^3 bf16 GEMM (bf16 out, fp32 accumulate)
// on random data, the two figures performance.md measures through PyTorch.
Result<Ceilings> measure_ceilings() {
  Ceilings c;
  const size_t n = size_t(1) << 30;
  void *x = nullptr, *y = nullptr;
  BENCH_CHECK(cudaMalloc(&x, n));
  BENCH_CHECK(cudaMalloc(&y, n));
  cuda::fill_normal(x, cuda::WDType::F32, int64_t(n / 4), 7, 0.f, 1.f, nullptr);
  const double cms = median_ms([&] { cudaMemcpyAsync(y, x, n, cudaMemcpyDeviceToDevice); }, 10, 2);
  c.copy_GBps = 2.0 * double(n) / (cms * 1e-3) / 1e9;
  const int N = 8192;
  cuda::fill_normal(x, cuda::WDType::BF16, int64_t(N) * N, 8, 0.f, 1.f, nullptr);
  cuda::fill_normal(static_cast<char*>(x) + size_t(N) * N * 2, cuda::WDType::BF16, int64_t(N) * N, 9, 0.f, 1.f,
                    nullptr);
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return make_error("cublasCreate failed");
  const float one = 1.f, zero = 0.f;
  void* A = x;
  void* B = static_cast<char*>(x) + size_t(N) * N * 2;
  bool ok = true;
  const double gms = median_ms(
      [&] {
        ok = ok && cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &one, A, CUDA_R_16BF, N, B, CUDA_R_16BF, N, &zero,
                                y, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
      },
      10, 3);
  cublasDestroy(h);
  cudaFree(x);
  cudaFree(y);
  if (!ok) return make_error("cublasGemmEx (bf16 8192^3) failed");
  c.gemm_TFLOPs = 2.0 * double(N) * N * N / (gms * 1e-3) / 1e12;
  return c;
}

int device_index(const std::string& d) { return d.size() > 5 ? std::atoi(d.c_str() + 5) : 0; }

// Bytes of one MoE expert set (all experts of one layer) and of everything else, for config c.
double expert_set_bytes(const ModelConfig& c) {
  return double(c.num_local_experts) * 3.0 * double(c.intermediate_size) * double(c.hidden_size) * 2.0;
}

// Weight bytes a batch-1 decode step reads (bf16 weights, fp32 routers).
double decode_weight_bytes(const ModelConfig& c) {
  const double H = double(c.hidden_size), A = double(c.num_attention_heads * c.head_dim),
               KV = double(c.num_key_value_heads * c.head_dim), I = double(c.intermediate_size);
  double b = 2.0 * H + 2.0 * double(c.vocab_size) * H + 2.0 * H;  // embedding row, lm_head, final norm
  for (auto k : c.layer_kinds) {
    b += 2.0 * 2.0 * H + 4.0 * double(c.num_local_experts) * H;  // norms, router (fp32)
    if (k == engine::LayerKind::Lightning)
      b += 2.0 * (3.0 * A * H + A * H + H * A + A);
    else
      b += 2.0 * (A * H + 2.0 * KV * H + H * A);
    b += double(c.num_experts_per_tok) * 3.0 * I * H * 2.0;
  }
  return b;
}

// FLOPs of a prefill of n tokens after `past` tokens.
double prefill_flops(const ModelConfig& c, double n, double past) {
  const double H = double(c.hidden_size), A = double(c.num_attention_heads * c.head_dim),
               KV = double(c.num_key_value_heads * c.head_dim), I = double(c.intermediate_size),
               d = double(c.head_dim), nh = double(c.num_attention_heads);
  double per_tok = 0, f = 0;
  for (auto k : c.layer_kinds) {
    per_tok += 2.0 * double(c.num_local_experts) * H + 2.0 * double(c.num_experts_per_tok) * 3.0 * I * H;
    if (k == engine::LayerKind::Lightning) {
      per_tok += 2.0 * 5.0 * A * H + nh * (4.0 * d * d + 4.0 * 64.0 * d);
    } else {
      per_tok += 2.0 * (2.0 * A * H + 2.0 * KV * H);
      f += 4.0 * nh * d * n * (past + (n + 1.0) / 2.0);
    }
  }
  return f + per_tok * n + 2.0 * double(c.vocab_size) * H;
}

double gb(double b) { return b / 1e9; }

}  // namespace

Status run_engine_bench_cuda(const CudaEngineBenchArgs& a) {
  const int dev = device_index(a.device);
  BENCH_CHECK(cudaSetDevice(dev));
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, dev));
  const std::string card = prop.name;
  const bool quiet = a.json;
  auto say = [&](const std::string& s) {
    if (!quiet) std::printf("%s\n", s.c_str()), std::fflush(stdout);
  };
  char line[512];

  M1_ASSIGN_OR_RETURN(Ceilings ceil, measure_ceilings());
  std::snprintf(line, sizeof line, "%s: copy %.0f GB/s (read+write), bf16 GEMM 8192^3 %.0f TFLOP/s", card.c_str(),
                ceil.copy_GBps, ceil.gemm_TFLOPs);
  say(line);

  // Weight upload through the backend's pinned staging, from pageable host memory (a memory-mapped
  // checkpoint in the page cache looks the same to the copy), on a throwaway backend.
  double upload_GBps = 0;
  {
    engine::CudaOptions o;
    o.device = dev;
    M1_ASSIGN_OR_RETURN(auto tmp, engine::make_cuda_backend(o));
    const int64_t rows = 65536, cols = 8192;  // 1 GiB of bf16
    std::vector<std::byte> host(size_t(rows * cols) * 2);
    for (size_t i = 0; i < host.size(); i += 4096) host[i] = std::byte(i >> 12);
    engine::TensorView t;
    t.name = "upload_probe";
    t.dtype = engine::DType::BF16;
    t.shape = {rows, cols};
    t.data = host.data();
    t.nbytes = host.size();
    M1_TRY(tmp->upload_weight(t));  // first: pinned buffers allocated, pages touched
    const auto t0 = Clock::now();
    M1_TRY(tmp->upload_weight(t));
    upload_GBps = double(t.nbytes) / secs(t0) / 1e9;
  }

  engine::CudaOptions o;
  o.device = dev;
  o.graphs = a.graphs;
  M1_ASSIGN_OR_RETURN(auto backend, engine::make_cuda_backend(o));
  engine::CudaControl* ctl = engine::cuda_control(*backend);
  engine::ModelOptions mo;
  mo.prefill_chunk = a.prefill_chunk;
  mo.step_graphs = a.graphs;

  std::unique_ptr<engine::Model> model;
  std::shared_ptr<engine::Checkpoint> ckpt;
  ModelConfig cfg;
  int64_t sets = 0;
  double load_s = 0;
  std::string source, sets_note;
  size_t free_b = 0, total_b = 0;
  BENCH_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (!a.model.empty()) {
    M1_ASSIGN_OR_RETURN(ckpt, engine::Checkpoint::open(a.model));
    cfg = ckpt->config();
    const auto t0 = Clock::now();
    M1_ASSIGN_OR_RETURN(model, engine::Model::create(ckpt, *backend, mo));
    backend->synchronize();
    load_s = secs(t0);
    source = a.model + " (read from its files)";
    sets = cfg.num_hidden_layers;
  } else {
    if (!a.random_weights)
      return make_error("--preset " + a.preset + " on the GPU needs --random-weights (generated on the device; " +
                        "m1-block is 96 GB, larger than the GPU machine's disk) or --model DIR", 2);
    M1_ASSIGN_OR_RETURN(cfg, engine::preset_config(a.preset));
    // Everything but the experts, the activations/scratch of one chunk, the K/V of the longest
    // context and a margin; the rest holds expert sets.
    const double set_b = expert_set_bytes(cfg);
    const double other_b = decode_weight_bytes(cfg) - double(cfg.num_hidden_layers * cfg.num_experts_per_tok) * set_b /
                                                          double(cfg.num_local_experts) +
                           2.0 * double(cfg.vocab_size * cfg.hidden_size);  // + the embedding table
    const double T = double(a.prefill_chunk), H = double(cfg.hidden_size),
                 A = double(cfg.num_attention_heads * cfg.head_dim), I = double(cfg.intermediate_size),
                 k = double(cfg.num_experts_per_tok);
    const double scratch_b = 4.0 * T * (4.0 * H + 3.0 * A + 2.0 * A) + 4.0 * T * k * (2.0 * I + H) + 2.0 * T * I + 1.5e9;
    int64_t max_ctx = 0;
    for (int64_t n : a.prefill) max_ctx = std::max(max_ctx, n);
    const double kv_b = double(max_ctx + 2 * a.decode_tokens + 1024) * 8.0 * double(cfg.num_key_value_heads * cfg.head_dim) *
                        double(cfg.num_softmax_layers());
    const double room = double(free_b) - other_b - scratch_b - kv_b - 2.0e9;
    sets = a.expert_sets > 0 ? a.expert_sets : std::max<int64_t>(1, std::min<int64_t>(cfg.num_hidden_layers, int64_t(room / set_b)));
    engine::RandomWeights rw;
    rw.expert_sets = sets < cfg.num_hidden_layers ? sets : 0;
    const auto t0 = Clock::now();
    M1_ASSIGN_OR_RETURN(model, engine::Model::create_random(cfg, *backend, mo, rw));
    backend->synchronize();
    load_s = secs(t0);
    source = a.preset + ", random normal(0, 0.02) weights generated on the GPU";
    if (sets < cfg.num_hidden_layers) {
      std::snprintf(line, sizeof line,
                    "the whole %s (%.1f GB of weights) does not fit this card (%.1f GB): %lld distinct expert sets "
                    "for %lld layers, layer l uses set l %% %lld (each set %.1f GB, read from HBM every step)",
                    a.preset.c_str(), gb(other_b + set_b * double(cfg.num_hidden_layers)), gb(double(total_b)),
                    (long long)sets, (long long)cfg.num_hidden_layers, (long long)sets, gb(set_b));
      sets_note = line;
    }
  }
  const double weights_b = double(model->weight_bytes());
  std::snprintf(line, sizeof line, "model: %s; %.1f GB on the device in %.2f s (%.0f GB/s); upload from host memory %.1f GB/s",
                source.c_str(), gb(weights_b), load_s, gb(weights_b) / load_s, upload_GBps);
  say(line);
  if (!sets_note.empty()) say("note: " + sets_note);

  const int64_t V = cfg.vocab_size;
  std::mt19937 rng(1234);
  auto random_ids = [&](int64_t n) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& t : ids) t = int32_t(rng() % uint32_t(std::min<int64_t>(V, 200000)));
    return ids;
  };
  // Warm-up: plans and module loads for the chunk shapes, a few decode steps.
  {
    std::vector<int64_t> warm = {a.prefill_chunk + 3};  // a full chunk and a short one
    for (int64_t n : a.prefill)
      if (n < a.prefill_chunk) warm.push_back(n);
    M1_ASSIGN_OR_RETURN(auto st, model->new_state());
    for (int64_t n : warm) {
      M1_ASSIGN_OR_RETURN(st, model->new_state());
      M1_TRY(model->forward(*st, random_ids(n), false, nullptr));
    }
    engine::Sampler g(engine::SamplingParams{0.f});
    for (int i = 0; i < 3; ++i) {
      M1_ASSIGN_OR_RETURN(auto id, model->sample_on_device(*st, g, V));
      const int32_t t = id ? *id : 0;
      M1_TRY(model->forward(*st, std::span<const int32_t>(&t, 1), false, nullptr));
    }
    backend->synchronize();
  }

  nlohmann::json jp = nlohmann::json::array(), jd = nlohmann::json::array(), jprof = nlohmann::json::object();
  // Prints the per-op table of the profiled ops (floor = max(bytes / copy, flops / GEMM)); JSON array.
  auto report = [&](const std::string& title) {
    auto prof = ctl->take_profile();
    std::sort(prof.begin(), prof.end(), [](const auto& x, const auto& y) { return x.ms > y.ms; });
    nlohmann::json arr = nlohmann::json::array();
    double total = 0, total_floor = 0;
    if (!quiet) std::printf("  per-op GPU time of %s (floor = max(bytes/copy, flops/GEMM)):\n", title.c_str());
    for (const auto& p : prof) {
      const double fl_ms = std::max(p.bytes / (ceil.copy_GBps * 1e9), p.flops / (ceil.gemm_TFLOPs * 1e12)) * 1e3;
      total += p.ms;
      total_floor += fl_ms;
      arr.push_back({{"op", p.op}, {"calls", p.calls}, {"ms", p.ms}, {"floor_ms", fl_ms}, {"bytes", p.bytes},
                     {"flops", p.flops}});
      if (!quiet)
        std::printf("    %-34s %4lld calls %9.3f ms  floor %8.3f ms  %6.2fx  %7.1f TFLOP/s  %6.0f GB/s\n", p.op.c_str(),
                    (long long)p.calls, p.ms, fl_ms, fl_ms > 0 ? p.ms / fl_ms : 0.0, p.flops / (p.ms * 1e9),
                    p.bytes / (p.ms * 1e6));
    }
    if (!quiet) std::printf("    %-34s %10s %9.3f ms  floor %8.3f ms  %6.2fx\n", "sum", "", total, total_floor, total / total_floor);
    return arr;
  };
  std::vector<std::string> rows;
  const double w_dec = decode_weight_bytes(cfg);
  const double state_b = 8.0 * double(model->lightning_state_floats());
  std::vector<int64_t> lens = a.prefill;
  for (int64_t c : a.contexts)
    if (std::find(lens.begin(), lens.end(), c) == lens.end()) lens.push_back(c);
  std::sort(lens.begin(), lens.end());
  double device_used_max = 0, peak_max = double(ctl->peak_bytes_allocated());
  for (int64_t n : lens) {
    M1_ASSIGN_OR_RETURN(auto st, model->new_state());
    const auto ids = random_ids(n);
    ctl->reset_peak();
    backend->synchronize();
    const auto t0 = Clock::now();
    M1_TRY(model->forward(*st, ids, false, nullptr));
    backend->synchronize();
    const double s = secs(t0);
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    device_used_max = std::max(device_used_max, double(tot - fr));
    peak_max = std::max(peak_max, double(ctl->peak_bytes_allocated()));
    const double kv_b = double(st->kv_pages.empty() ? 0 : st->kv_pages[0].size()) * double(model->options().kv_page_size) *
                        double(model->kv_floats_per_token()) * 4.0 * double(cfg.num_softmax_layers());
    const double scratch = double(ctl->peak_bytes_allocated()) - weights_b - kv_b - state_b / 2 - 4.0 * double(V);
    if (std::find(a.prefill.begin(), a.prefill.end(), n) != a.prefill.end()) {
      const double fl = prefill_flops(cfg, double(n), 0);
      const double tps = double(n) / s, tf = fl / s / 1e12;
      jp.push_back({{"tokens", n}, {"s", s}, {"tokens_per_s", tps}, {"TFLOPs", tf}, {"vs_gemm_ceiling", tf / ceil.gemm_TFLOPs},
                    {"floor_tokens_per_s", double(n) / (fl / (ceil.gemm_TFLOPs * 1e12))},
                    {"scratch_GB", gb(scratch)}, {"peak_GB", gb(double(ctl->peak_bytes_allocated()))}});
      std::snprintf(line, sizeof line, "| prefill %6lld tokens | %9.3f s | %9.0f tok/s | %6.1f TFLOP/s = %4.1f%% of GEMM | floor %7.0f tok/s | scratch %.2f GB |",
                    (long long)n, s, tps, tf, 100.0 * tf / ceil.gemm_TFLOPs,
                    double(n) / (fl / (ceil.gemm_TFLOPs * 1e12)), gb(scratch));
      rows.push_back(line);
      say(line);
    }
    if (std::find(a.contexts.begin(), a.contexts.end(), n) == a.contexts.end()) continue;
    // Decode at this context: greedy, sampled on the device, steps replayed as graphs.
    engine::Sampler greedy(engine::SamplingParams{0.f});
    const int64_t rep0 = ctl->graph_replays(), cap0 = ctl->graph_captures();
    std::vector<double> step_ms;
    auto step = [&]() -> Status {
      M1_ASSIGN_OR_RETURN(auto id, model->sample_on_device(*st, greedy, V));
      if (!id) return make_error("device sampling unavailable");
      const int32_t t = *id;
      return model->forward(*st, std::span<const int32_t>(&t, 1), false, nullptr);
    };
    for (int i = 0; i < 2; ++i) M1_TRY(step());  // record the step graph
    backend->synchronize();
    auto prev = Clock::now();
    const auto d0 = prev;
    for (int64_t i = 0; i < a.decode_tokens; ++i) {
      M1_TRY(step());  // the sample waits for the previous step: consecutive gaps are step times
      const auto now = Clock::now();
      if (i > 0) step_ms.push_back(std::chrono::duration<double, std::milli>(now - prev).count());
      prev = now;
    }
    backend->synchronize();
    const double mean_ms = secs(d0) * 1e3 / double(a.decode_tokens);
    std::sort(step_ms.begin(), step_ms.end());
    const double med = step_ms.empty() ? mean_ms : step_ms[step_ms.size() / 2];
    const double ctx = double(st->length);
    const double bytes = w_dec + state_b + ctx * double(model->kv_floats_per_token()) * 4.0 * double(cfg.num_softmax_layers());
    const double floor_ms = bytes / (ceil.copy_GBps * 1e9) * 1e3;
    jd.push_back({{"context", n}, {"ms_per_token", med}, {"mean_ms_per_token", mean_ms}, {"floor_ms", floor_ms},
                  {"bytes_per_token_GB", gb(bytes)}, {"GBps", gb(bytes) / (med * 1e-3)}, {"vs_floor", med / floor_ms},
                  {"graph_captures", ctl->graph_captures() - cap0}, {"graph_replays", ctl->graph_replays() - rep0}});
    std::snprintf(line, sizeof line, "| decode at %6lld ctx | %6.3f ms/token (mean %.3f) | %5.0f GB/s | floor %.3f ms | %.2fx floor = %3.0f%% | graphs %lld captured, %lld replayed |",
                  (long long)n, med, mean_ms, gb(bytes) / (med * 1e-3), floor_ms, med / floor_ms, 100.0 * floor_ms / med,
                  (long long)(ctl->graph_captures() - cap0), (long long)(ctl->graph_replays() - rep0));
    rows.push_back(line);
    say(line);
    if (a.profile) {  // one eager step with events around every op
      ctl->set_profiling(true);
      M1_TRY(step());
      backend->synchronize();
      ctl->set_profiling(false);
      jprof["decode_" + std::to_string(n)] = report("one eager decode step at " + std::to_string(n) + " context");
    }
  }
  // Where prefill time goes: the last chunk of the 4K and of the longest prompt, profiled (a
  // separate run: events around every op).
  if (a.profile) {
    int64_t longest = 0;
    for (int64_t n : a.prefill) longest = std::max(longest, n);
    std::vector<int64_t> which = {longest};
    if (std::find(a.prefill.begin(), a.prefill.end(), 4096) != a.prefill.end() && longest != 4096) which.insert(which.begin(), 4096);
    for (int64_t n : which) {
      M1_ASSIGN_OR_RETURN(auto st, model->new_state());
      const auto ids = random_ids(n);
      const int64_t last = std::min(a.prefill_chunk, n), head = n - last;
      if (head > 0) M1_TRY(model->forward(*st, std::span<const int32_t>(ids.data(), size_t(head)), false, nullptr));
      backend->synchronize();
      ctl->set_profiling(true);
      const auto t0 = Clock::now();
      M1_TRY(model->forward(*st, std::span<const int32_t>(ids.data() + head, size_t(last)), false, nullptr));
      backend->synchronize();
      const double s = secs(t0);
      ctl->set_profiling(false);
      jprof["prefill_" + std::to_string(n)] =
          report("the last " + std::to_string(last) + "-token chunk of a " + std::to_string(n) + "-token prefill (" +
                 std::to_string(int(s * 1e3)) + " ms wall with events)");
    }
  }
  nlohmann::json j = {{"bench", "engine_cuda"}, {"device", card}, {"card_GB", gb(double(total_b))},
                      {"copy_GBps", ceil.copy_GBps}, {"bf16_gemm_TFLOPs", ceil.gemm_TFLOPs}, {"model", source},
                      {"layers", cfg.num_hidden_layers}, {"expert_sets", sets}, {"weights_GB", gb(weights_b)},
                      {"load_s", load_s}, {"load_GBps", gb(weights_b) / load_s}, {"upload_GBps", upload_GBps},
                      {"prefill_chunk", a.prefill_chunk}, {"prefill", jp}, {"decode", jd},
                      {"peak_GB", gb(peak_max)}, {"device_used_max_GB", gb(device_used_max)},
                      {"profile", jprof}};
  if (!quiet) {
    std::printf("\nm1 bench engine (%s, %s)\n", card.c_str(), source.c_str());
    if (!sets_note.empty()) std::printf("note: %s\n", sets_note.c_str());
    std::printf("ceilings: copy %.0f GB/s, bf16 GEMM %.0f TFLOP/s; weights %.1f GB loaded at %.0f GB/s; upload %.1f GB/s; "
                "prefill chunk %lld; peak device memory %.1f GB (backend) / %.1f GB (card in use)\n",
                ceil.copy_GBps, ceil.gemm_TFLOPs, gb(weights_b), gb(weights_b) / load_s, upload_GBps,
                (long long)a.prefill_chunk, gb(peak_max), gb(device_used_max));
    for (const auto& r : rows) std::printf("%s\n", r.c_str());
  }
  std::cout << j.dump() << std::endl;
  return {};
}

}  // namespace m1::bench
