// `m1 model init` (random model folders in the real checkpoint format) and `m1 model info` (what a
// model folder holds, and whether every tensor the forward pass needs binds). Progress for long
// writes goes to stderr only when it is a terminal.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>

#include "cli/command.h"
#include "engine/checkpoint.h"
#include "engine/model_init.h"

namespace m1::cli {
namespace {

using namespace m1::engine;

struct InitArgs {
  std::string preset = "tiny", out, format = "original", shard_size, dtype = "bf16";
  uint64_t seed = 0;
  int64_t layers = 0;
  bool force = false;
};

struct InfoArgs {
  std::string model;
  bool json = false;
};

void run_init(const InitArgs& a) {
  InitOptions o;
  o.preset = a.preset;
  o.out = a.out;
  o.seed = a.seed;
  o.layers = a.layers;
  o.force = a.force;
  o.format = a.format == "hf" ? ConfigFormat::HF : ConfigFormat::Original;
  o.dtype = a.dtype == "fp32" ? DType::F32 : a.dtype == "fp16" ? DType::F16 : DType::BF16;
  if (!a.shard_size.empty()) {
    auto s = parse_byte_size(a.shard_size);
    if (!s.ok()) return fail(s.error());
    o.shard_bytes = *s;
  }
  const bool tty = ::isatty(2);
  auto last = std::chrono::steady_clock::now();
  if (tty) {
    o.progress = [&](uint64_t done, uint64_t total) {
      auto now = std::chrono::steady_clock::now();
      if (done < total && now - last < std::chrono::milliseconds(250)) return;
      last = now;
      std::fprintf(stderr, "\rwriting weights: %s / %s (%.0f%%)   ", format_bytes(done).c_str(),
                   format_bytes(total).c_str(), total ? 100.0 * double(done) / double(total) : 100.0);
      if (done >= total) std::fprintf(stderr, "\n");
    };
  }
  auto t0 = std::chrono::steady_clock::now();
  auto r = init_model(o);
  if (!r.ok()) return fail(r.error());
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const ModelConfig& c = r->config;
  std::printf("wrote %s: preset %s, %s format, %lld layers (%lld softmax), %llu tensors, %s of weights in %zu files, %.2f s\n",
              a.out.c_str(), a.preset.c_str(), a.format.c_str(), (long long)c.num_hidden_layers,
              (long long)c.num_softmax_layers(), (unsigned long long)r->num_tensors, format_bytes(r->tensor_bytes).c_str(),
              r->files.size(), s);
}

void run_info(const InfoArgs& a) {
  auto ck = Checkpoint::open(a.model);
  if (!ck.ok()) return fail(ck.error());
  const ModelConfig& c = (*ck)->config();
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_dtype;  // name -> (tensors, bytes)
  size_t scales = 0;
  for (const auto& n : (*ck)->names()) {
    const TensorView* v = (*ck)->find(n);
    auto& e = by_dtype[std::string(dtype_name(v->dtype))];
    e.first++;
    e.second += v->nbytes;
    scales += v->scale != nullptr;
  }
  auto w = bind_weights(**ck);
  std::string layout = "?";
  if (w.ok() && !w->layers.empty()) layout = w->layers[0].stacked_experts ? "stacked (gate_up_proj/down_proj)" : "per-expert (w1/w2/w3)";
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["format"] = c.format == ConfigFormat::HF ? "hf" : "original";
    j["config"] = config_to_json(c, c.format);
    j["fingerprint"] = config_fingerprint(c);
    j["tensors"] = (*ck)->names().size();
    j["bytes"] = (*ck)->total_bytes();
    j["files"] = (*ck)->num_files();
    for (const auto& [d, e] : by_dtype) j["dtypes"][d] = {{"tensors", e.first}, {"bytes", e.second}};
    j["f8_scales"] = scales;
    j["weights_ok"] = w.ok();
    if (w.ok()) j["moe_layout"] = layout;
    else j["weights_error"] = w.error().message;
    std::cout << j.dump(2) << "\n";
  } else {
    std::string pattern;
    for (auto k : c.layer_kinds) pattern += k == LayerKind::Softmax ? 'S' : 'L';
    std::printf("model      %s\n", a.model.c_str());
    std::printf("format     %s config.json, fingerprint %s\n",
                c.format == ConfigFormat::HF ? "transformers (minimax)" : "MiniMax original (minimax_m1)",
                config_fingerprint(c).c_str());
    std::printf("shape      vocab %lld, hidden %lld, %lld layers (%lld lightning + %lld softmax)\n",
                (long long)c.vocab_size, (long long)c.hidden_size, (long long)c.num_hidden_layers,
                (long long)c.num_lightning_layers(), (long long)c.num_softmax_layers());
    std::printf("layers     %s\n", pattern.c_str());
    std::printf("attention  %lld heads x %lld, %lld kv heads, rotary_dim %lld, rope_theta %g\n",
                (long long)c.num_attention_heads, (long long)c.head_dim, (long long)c.num_key_value_heads,
                (long long)c.rotary_dim, c.rope_theta);
    std::printf("moe        %lld experts, top-%lld, intermediate %lld, %s\n", (long long)c.num_local_experts,
                (long long)c.num_experts_per_tok, (long long)c.intermediate_size, layout.c_str());
    std::printf("residual   alpha %g/%g/%g (linear/full/mlp), beta %g/%g/%g, postnorm %s\n", c.linear_attn_alpha,
                c.full_attn_alpha, c.mlp_alpha, c.linear_attn_beta, c.full_attn_beta, c.mlp_beta,
                c.postnorm ? "true" : "false");
    std::printf("tensors    %zu in %zu file(s), %s\n", (*ck)->names().size(), (*ck)->num_files(),
                format_bytes((*ck)->total_bytes()).c_str());
    for (const auto& [d, e] : by_dtype)
      std::printf("  %-8s %llu tensors, %s\n", d.c_str(), (unsigned long long)e.first, format_bytes(e.second).c_str());
    if (scales) std::printf("  F8 scales found for %zu tensors (not applied yet)\n", scales);
    std::printf("weights    %s\n", w.ok() ? "all tensors of the forward pass bound and shape-checked" : "ERROR");
  }
  if (!w.ok()) fail(w.error());
}

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto* model = root.add_subcommand("model", "Create or inspect model folders (config.json + safetensors)");
  model->require_subcommand(1);

  auto init_args = std::make_shared<InitArgs>();
  auto* init = model->add_subcommand("init", "Write a model folder with random weights (normal, std 0.02; norms 1.0)");
  init->add_option("--preset", init_args->preset, "tiny (CPU tests), m1-block (8-layer benchmark, 95.6 GB), m1 (80 layers, 912 GB)")
      ->check(CLI::IsMember({"tiny", "m1-block", "m1"}));
  init->add_option("--out", init_args->out, "Folder to create (written atomically)")->required();
  init->add_option("--seed", init_args->seed, "Random seed (same seed, same weights)");
  init->add_option("--layers", init_args->layers, "Number of layers (every 8th is softmax; the last is when none would be)")
      ->check(CLI::PositiveNumber);
  init->add_option("--format", init_args->format,
                   "original: MiniMax names, per-expert w1/w2/w3; hf: transformers' minimax config, stacked "
                   "experts, rotary_dim = head_dim")
      ->check(CLI::IsMember({"original", "hf"}));
  init->add_option("--shard-size", init_args->shard_size, "Max bytes per shard, e.g. 64MB, 2GB (default 8MB tiny, 2GB else)");
  init->add_option("--dtype", init_args->dtype, "Weight dtype (routers are always fp32)")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}));
  init->add_flag("--force", init_args->force, "Replace --out if it exists");
  init->callback([init_args] { run_init(*init_args); });

  auto info_args = std::make_shared<InfoArgs>();
  auto* info = model->add_subcommand("info", "Summarize a model folder and check that its weights bind");
  info->add_option("--model", info_args->model, "Model folder")->required();
  info->add_flag("--json", info_args->json, "Print JSON");
  info->callback([info_args] { run_info(*info_args); });
});

}  // namespace
}  // namespace m1::cli
