# The transformers baseline of performance.md (../shared/bench/hf_baseline.py), run on the GPU
# machine in the same call as `m1 bench engine --device cuda` (bench/cuda/engine_vs_hf.sh): an
# m1-block-shaped MiniMaxForCausalLM (8 layers: 7 lightning + 1 softmax, full M1 width, bf16,
# random normal(0, 0.02) weights, norms 1), sdpa attention, its own grouped expert kernels.
# Prints one JSON line per figure.
# When the whole model does not fit the card (an H100 holds ~6 of the 8 layers' experts), the same
# reuse as the engine benchmark: layer l uses the expert weights of layer l % SETS (the tensors
# are shared, so bytes per token and FLOPs are unchanged; each set is far larger than L2). The
# model is then built on the meta device and materialized tensor by tensor; buffers (RoPE, decay
# tables) come from a small twin built on the GPU with 2 experts.
# Env: LAYERS (8), PREFILL (1024,4096,16384,65536), DECODE (1024,16384,65536), STEPS (32), SETS (auto).
import json, os, sys, time

import torch
from transformers import MiniMaxConfig, MiniMaxForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"


def out(**kw):
    print(json.dumps(kw), flush=True)


def ev_time(fn, reps=10, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(True), torch.cuda.Event(True)
    ts = []
    for _ in range(reps):
        s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


out(device=torch.cuda.get_device_name(0), torch=torch.__version__,
    transformers=__import__("transformers").__version__)
a = torch.empty(2 * 1024**3, dtype=torch.uint8, device=dev); b = torch.empty_like(a)
ms = ev_time(lambda: b.copy_(a)); out(copy_TBps=2 * a.numel() / ms / 1e9); del a, b
x = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev); y = torch.randn_like(x)
ms = ev_time(lambda: x @ y); out(bf16_gemm_TFLOPs=2 * 8192**3 / ms / 1e9); del x, y
torch.cuda.empty_cache()

layers = int(os.environ.get("LAYERS", "8"))
H, I, E, V = 6144, 9216, 32, 200064


def config(experts):
    return MiniMaxConfig(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=layers,
        num_attention_heads=64, num_key_value_heads=8, head_dim=128, num_local_experts=experts, num_experts_per_tok=2,
        layer_types=(["linear_attention"] * 7 + ["full_attention"]) * (layers // 8), block_size=256,
        full_attn_alpha_factor=3.5565588200778455, linear_attn_alpha_factor=3.5565588200778455,
        mlp_alpha_factor=3.5565588200778455, rms_norm_eps=1e-5,
        rope_parameters={"rope_theta": 1e7, "rope_type": "default"}, max_position_embeddings=1 << 20)


set_bytes = E * 3 * I * H * 2
other_bytes = 2 * V * H * 2 + layers * 5 * 8192 * H * 2
free, total = torch.cuda.mem_get_info()
fit = int((free - other_bytes - 16e9) // set_bytes)  # 16 GB: activations of a 16K prefill, cache, margin
sets = int(os.environ.get("SETS", "0")) or max(1, min(layers, fit))
torch.set_default_dtype(torch.bfloat16)
t0 = time.time()


def experts_of(layer):
    for name, mod in layer.named_modules():
        if name.endswith("experts") and any(True for _ in mod.parameters(recurse=False)):
            return name, mod
    raise RuntimeError("no experts module with parameters in a decoder layer")


if sets >= layers:
    with torch.device(dev):
        model = MiniMaxForCausalLM(config(E))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1: p.normal_(0, 0.02)
            else: p.fill_(1.0)
else:
    with torch.device(dev):  # the small twin: every buffer computed on the GPU
        twin = MiniMaxForCausalLM(config(2))
    buffers = {n: t.detach().clone() for n, t in twin.named_buffers()}
    del twin
    torch.cuda.empty_cache()
    with torch.device("meta"):
        model = MiniMaxForCausalLM(config(E))
    decoder = model.model.layers

    def materialize(mod, name, like):
        t = torch.empty(like.shape, dtype=like.dtype, device=dev)
        with torch.no_grad():
            if t.dim() > 1: t.normal_(0, 0.02)
            else: t.fill_(1.0)
        mod._parameters[name] = torch.nn.Parameter(t, requires_grad=False)

    for l, layer in enumerate(decoder):
        path, ex = experts_of(layer)
        if l < sets:
            for n, p in list(ex.named_parameters(recurse=False)):
                materialize(ex, n, p)
        else:
            src = experts_of(decoder[l % sets])[1]
            for n in list(ex._parameters):
                ex._parameters[n] = src._parameters[n]
    for mod in model.modules():
        for n, p in list(mod._parameters.items()):
            if p is not None and p.is_meta:
                materialize(mod, n, p)
    for full, t in buffers.items():
        prefix, _, leaf = full.rpartition(".")
        mod = model.get_submodule(prefix) if prefix else model
        mod._buffers[leaf] = t
    left = [n for n, p in model.named_parameters() if p.is_meta] + [n for n, t in model.named_buffers() if t.is_meta]
    if left:
        raise RuntimeError("still on the meta device: " + ", ".join(left[:5]))
model.eval()
nparam = sum(p.numel() for p in model.parameters())  # shared tensors counted once
out(params_B=nparam / 1e9, expert_sets=sets, layers=layers, init_s=time.time() - t0,
    attn_impl=model.config._attn_implementation,
    experts_impl=getattr(model.config, "_experts_implementation", None),
    allocated_GB=torch.cuda.memory_allocated() / 1e9)


@torch.no_grad()
def prefill(n):
    ids = torch.randint(0, 200000, (1, n), device=dev)
    reps, warm = (3, 1) if n <= 16384 else (1, 1)
    return ev_time(lambda: model(ids, use_cache=False, logits_to_keep=1), reps=reps, warm=warm)


for n in [int(v) for v in os.environ.get("PREFILL", "1024,4096,16384,65536").split(",")]:
    try:
        ms = prefill(n); out(hf_prefill_tokens=n, ms=ms, tok_per_s=n / ms * 1e3)
    except Exception as ex:  # out of memory at long prompts on an 80 GB card
        out(hf_prefill_tokens=n, error=str(ex)[:160]); torch.cuda.empty_cache(); break


@torch.no_grad()
def decode(ctx, steps):
    ids = torch.randint(0, 200000, (1, ctx), device=dev)
    o = model(ids, use_cache=True, logits_to_keep=1)
    pkv = o.past_key_values; nxt = o.logits[:, -1:].argmax(-1)
    for _ in range(2):  # warm
        o = model(nxt, past_key_values=pkv, use_cache=True); pkv = o.past_key_values; nxt = o.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize(); t = time.time()
    for _ in range(steps):
        o = model(nxt, past_key_values=pkv, use_cache=True); pkv = o.past_key_values; nxt = o.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize()
    return (time.time() - t) / steps * 1e3


steps = int(os.environ.get("STEPS", "32"))
for c in [int(v) for v in os.environ.get("DECODE", "1024,16384,65536").split(",")]:
    try:
        out(hf_decode_ctx=c, ms_per_token=decode(c, steps))
    except Exception as ex:
        out(hf_decode_ctx=c, error=str(ex)[:160]); torch.cuda.empty_cache(); break
out(peak_mem_GB=torch.cuda.max_memory_allocated() / 1e9)
