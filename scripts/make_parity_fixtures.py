#!/usr/bin/env python3
"""Parity fixtures for the engine: random fp32 transformers.MiniMaxForCausalLM models and their logits.

Runs where torch + transformers (>= 5, with MiniMaxConfig / MiniMaxForCausalLM) are installed (the GPU
machine); computes on the CPU in fp32 so no TF32 or kernel choice blurs the reference.
For each config it writes OUT/<name>/hf/ (model.save_pretrained: config.json + model.safetensors),
OUT/<name>/orig/ (the same weights under the original MiniMax-M1 names and config fields, per-expert
w1/w2/w3) and OUT/<name>/logits.json:
  prompt            token ids of the prompt (length not a multiple of block_size, > block_size)
  prefill_logits    [len(prompt)][vocab] logits of one prefill (no cache)
  split             where the two-append run cut the prompt; two_append_max_rel: how far transformers'
                    own cached second append landed from prefill_logits (null if that path failed)
  decode_tokens     greedy continuation (argmax of the previous step), fed one at a time with the cache
  decode_logits     [steps][vocab] transformers' cached decode logits (null if that path failed)
  decode_logits_full the same positions recomputed by one uncached forward over prompt + tokens
  cache_decode_max_rel  max |cached - full| / max(1, |full|)
Why both: the engine must match the math, and transformers' cache path in some versions mis-tracks
positions when layer 0 is a linear layer; the full recompute is the unambiguous reference.

Usage: python3 scripts/make_parity_fixtures.py OUT_DIR
"""
import json
import os
import sys
import traceback

import torch
import transformers
from transformers import MiniMaxConfig, MiniMaxForCausalLM
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import export_m1  # noqa: E402

ALPHA = 3.5565588200778455  # 160 ** 0.25, M1's residual scale

# name: (hidden, heads, head_dim, kv_heads, experts, top_k, intermediate, vocab, layers, block, seq, theta)
CONFIGS = {
    # GQA ratio 1, head_dim 16, 4 experts, 45 tokens over blocks of 16.
    "gqa1_hd16": (32, 4, 16, 4, 4, 2, 32, 256, 8, 16, 45, 1e4),
    # head_dim 128, a single head (GQA 1 on one KV head), 3 experts, 77 tokens over blocks of 32.
    "hd128": (32, 1, 128, 1, 3, 2, 32, 320, 8, 32, 77, 1e7),
    # GQA ratio 2, head_dim 32, 4 experts, 53 tokens over blocks of 8.
    "gqa2_hd32": (48, 4, 32, 2, 4, 2, 16, 384, 8, 8, 53, 1e6),
    # 16 layers (two softmax layers), GQA 4, head_dim 64, 2 experts top-1, 40 tokens over blocks of 16.
    "gqa4_hd64_l16": (32, 4, 64, 1, 2, 1, 32, 256, 16, 16, 40, 1e4),
}
DECODE_STEPS = 6


def rel_err(a, b):
    return float(((a - b).abs() / b.abs().clamp(min=1.0)).max())


def build(name, spec, seed):
    hidden, heads, hd, kvh, experts, topk, inter, vocab, layers, block, seq, theta = spec
    layer_types = (["linear_attention"] * 7 + ["full_attention"]) * (layers // 8)
    cfg = MiniMaxConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kvh, head_dim=hd, num_local_experts=experts,
        num_experts_per_tok=topk, layer_types=layer_types, block_size=block,
        full_attn_alpha_factor=ALPHA, linear_attn_alpha_factor=ALPHA, mlp_alpha_factor=ALPHA,
        full_attn_beta_factor=1.0, linear_attn_beta_factor=1.0, mlp_beta_factor=1.0,
        rms_norm_eps=1e-5, rope_parameters={"rope_theta": theta, "rope_type": "default"},
        max_position_embeddings=4096, tie_word_embeddings=False, sliding_window=None)
    torch.manual_seed(seed)
    model = MiniMaxForCausalLM(cfg).to(torch.float32).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "embed_tokens" in pname:
                p.normal_(0, 0.5)
            elif "gate.weight" in pname and "mlp" in pname or "block_sparse_moe.gate" in pname:
                p.normal_(0, 0.3)  # routers: decisive top-k so rounding cannot flip a choice
            else:
                p.normal_(0, 0.08)
    return cfg, model, seq, block


def original_config(cfg, spec):
    hidden, heads, hd, kvh, experts, topk, inter, vocab, layers, block, seq, theta = spec
    return {
        "architectures": ["MiniMaxM1ForCausalLM"], "model_type": "minimax_m1",
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kvh,
        "head_dim": hd, "rotary_dim": hd, "rope_theta": theta, "num_local_experts": experts,
        "num_experts_per_tok": topk, "attn_type_list": [0 if t == "linear_attention" else 1 for t in cfg.layer_types],
        "layernorm_full_attention_alpha": ALPHA, "layernorm_full_attention_beta": 1.0,
        "layernorm_linear_attention_alpha": ALPHA, "layernorm_linear_attention_beta": 1.0,
        "layernorm_mlp_alpha": ALPHA, "layernorm_mlp_beta": 1.0, "postnorm": True,
        "shared_intermediate_size": 0, "rms_norm_eps": 1e-5, "max_position_embeddings": 4096,
        "block_size": block, "tie_word_embeddings": False, "torch_dtype": "float32",
        "hidden_act": "silu",
    }


def original_tensors(model, cfg):
    """state_dict renamed to the original layout (block_sparse_moe.gate + experts.E.w1/w2/w3), fp32;
    the one conversion the project has (train/export_m1.py)."""
    return export_m1.original_tensors(model, cfg, torch.float32)


@torch.no_grad()
def logits_of(model, ids):
    return model(torch.tensor([ids]), use_cache=False).logits[0].float()


@torch.no_grad()
def cached_step(model, ids, past, pos0):
    n = len(ids)
    cp = torch.arange(pos0, pos0 + n)
    out = model(torch.tensor([ids]), past_key_values=past, use_cache=True, cache_position=cp,
                position_ids=cp.unsqueeze(0))
    return out.logits[0].float(), out.past_key_values


def run_one(name, spec, outdir, seed):
    cfg, model, seq, block = build(name, spec, seed)
    assert seq > block and seq % block != 0, (name, seq, block)
    g = torch.Generator().manual_seed(seed + 1)
    prompt = torch.randint(0, cfg.vocab_size, (seq,), generator=g).tolist()
    full = logits_of(model, prompt)
    meta = {"name": name, "transformers": transformers.__version__, "torch": torch.__version__,
            "block_size": block, "prompt": prompt, "prefill_logits": full.tolist()}
    # Two appends through transformers' cache.
    split = seq // 3 + 1
    meta["split"] = split
    try:
        la, past = cached_step(model, prompt[:split], None, 0)
        lb, past = cached_step(model, prompt[split:], past, split)
        meta["two_append_max_rel"] = rel_err(torch.cat([la, lb]), full)
    except Exception:
        meta["two_append_max_rel"] = None
        meta["two_append_error"] = traceback.format_exc()[-800:]
    # Greedy decode through the cache, then the same positions recomputed without it.
    tokens, cached = [], []
    try:
        lp, past = cached_step(model, prompt, None, 0)
        nxt = int(lp[-1].argmax())
        for s in range(DECODE_STEPS):
            tokens.append(nxt)
            l1, past = cached_step(model, [nxt], past, seq + s)
            cached.append(l1[-1])
            nxt = int(l1[-1].argmax())
    except Exception:
        meta["decode_error"] = traceback.format_exc()[-800:]
        tokens, cached = [], []
        nxt = int(full[-1].argmax())
        for s in range(DECODE_STEPS):  # greedy by full recompute
            tokens.append(nxt)
            nxt = int(logits_of(model, prompt + tokens)[-1].argmax())
    recomputed = logits_of(model, prompt + tokens)[seq:]
    meta["decode_tokens"] = tokens
    meta["decode_logits_full"] = recomputed.tolist()
    if cached:
        c = torch.stack(cached)
        meta["decode_logits"] = c.tolist()
        meta["cache_decode_max_rel"] = rel_err(c, recomputed)
    else:
        meta["decode_logits"] = None
        meta["cache_decode_max_rel"] = None
    # The lightning layers really run their block loop: their block size is below the prompt length.
    attn0 = model.model.layers[0].self_attn
    assert type(attn0).__name__ == "MiniMaxLightningAttention" and attn0.block_size == block, type(attn0)
    meta["num_blocks"] = (seq + block - 1) // block
    os.makedirs(f"{outdir}/{name}/hf", exist_ok=True)
    model.save_pretrained(f"{outdir}/{name}/hf")
    os.makedirs(f"{outdir}/{name}/orig", exist_ok=True)
    with open(f"{outdir}/{name}/orig/config.json", "w") as f:
        json.dump(original_config(cfg, spec), f, indent=1)
    save_file(original_tensors(model, cfg), f"{outdir}/{name}/orig/model.safetensors", metadata={"format": "pt"})
    with open(f"{outdir}/{name}/logits.json", "w") as f:
        json.dump(meta, f)
    print(json.dumps({"name": name, "params": sum(p.numel() for p in model.parameters()),
                      "two_append_max_rel": meta["two_append_max_rel"],
                      "cache_decode_max_rel": meta["cache_decode_max_rel"],
                      "decode_tokens": tokens, "errors": {k: v for k, v in meta.items() if k.endswith("_error")},
                      "hf_files": sorted(os.listdir(f"{outdir}/{name}/hf"))}), flush=True)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_parity_fixtures.py OUT_DIR")
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    for i, (name, spec) in enumerate(CONFIGS.items()):
        run_one(name, spec, sys.argv[1], 1234 + 17 * i)


if __name__ == "__main__":
    main()
