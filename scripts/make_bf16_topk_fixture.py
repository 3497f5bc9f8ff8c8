#!/usr/bin/env python3
"""bf16 parity reference for the CUDA engine (issue 6): a random M1-shaped transformers
MiniMaxForCausalLM (64 heads x head_dim 128, GQA 8, rotary over the whole head, 7 lightning + 1
softmax layer, 8 experts top-2) with bf16 weights, and transformers' top-5 tokens at every position.

Runs on the GPU machine (torch + transformers >= 5). Writes to OUT:
  orig/        the model in the original MiniMax-M1 format, bf16 (what `m1` loads; the router is
               stored fp32 but holds the same bf16-rounded values transformers uses)
  topk.json    for each sequence: tokens, n_prompt (the engine prefills that many and decodes the
               rest one token at a time, teacher-forced), and the top-5 ids/logits per position of
                 hf_bf16: the model run in bf16 (weights and activations), as users run it
                 hf_fp32: the same bf16-rounded weights computed in fp32 (TF32 off): the precise answer
               plus hf_bf16_vs_fp32_*: how far transformers' own bf16 run lands from its fp32 run
               (top-1 agreement, worst per-position rms and per-logit relative error): the noise
               any bf16 implementation lives with.
Weights: normal(0, 0.02) (the benchmark's and transformers' init) for every matrix and the embedding,
norms 1, routers normal(0, 0.3) so a bf16 rounding of the router input cannot flip a token's top-2
choice wholesale (at 0.02 the 8 router logits are near-ties and the comparison would measure
routing coin flips, not the engine).

Usage: python3 scripts/make_bf16_topk_fixture.py OUT_DIR
"""
import json
import os
import sys
import time

import torch
import transformers
from transformers import MiniMaxConfig, MiniMaxForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import export_m1  # noqa: E402

ALPHA = 3.5565588200778455  # 160 ** 0.25, M1's residual scale
SEQS = [(1100, 40), (600, 40)]  # (prompt tokens, teacher-forced decode tokens)
TOPK = 5


def build(seed):
    cfg = MiniMaxConfig(
        vocab_size=8192, hidden_size=1024, intermediate_size=512, num_hidden_layers=8,
        num_attention_heads=64, num_key_value_heads=8, head_dim=128, num_local_experts=8,
        num_experts_per_tok=2, layer_types=["linear_attention"] * 7 + ["full_attention"], block_size=256,
        full_attn_alpha_factor=ALPHA, linear_attn_alpha_factor=ALPHA, mlp_alpha_factor=ALPHA,
        full_attn_beta_factor=1.0, linear_attn_beta_factor=1.0, mlp_beta_factor=1.0,
        rms_norm_eps=1e-5, rope_parameters={"rope_theta": 1e6, "rope_type": "default"},
        max_position_embeddings=8192, tie_word_embeddings=False, sliding_window=None)
    torch.manual_seed(seed)
    model = MiniMaxForCausalLM(cfg).to(torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif ".mlp.gate.weight" in name:
                p.normal_(0, 0.3)
            else:
                p.normal_(0, 0.02)
            p.copy_(p.to(torch.bfloat16).float())  # the weights both sides hold
    return cfg, model


@torch.no_grad()
def run(model, ids):
    return model(torch.tensor([ids], device="cuda"), use_cache=False).logits[0].float()


def top5(logits):
    v, i = logits.topk(TOPK, dim=-1)
    return i.cpu(), v.cpu()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_bf16_topk_fixture.py OUT_DIR")
    out = sys.argv[1]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    cfg, model = build(4242)
    export_m1.export_original(model, cfg, os.path.join(out, "orig"), torch.bfloat16, shard_bytes=1 << 30)
    g = torch.Generator().manual_seed(99)
    seqs = [torch.randint(0, cfg.vocab_size, (p + d,), generator=g).tolist() for p, d in SEQS]
    model = model.cuda()
    full32 = [run(model, s) for s in seqs]
    model = model.to(torch.bfloat16)
    full16 = [run(model, s) for s in seqs]
    # How far transformers' own bf16 run lands from its fp32 run, in the measures the tests use:
    # per position ||a - b|| / ||b||, and per logit |a - b| / max(1, |b|).
    rms = max(float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max()) for a, b in zip(full16, full32))
    worst = max(float(((a - b).abs() / b.abs().clamp(min=1.0)).max()) for a, b in zip(full16, full32))
    fp32, bf16 = [top5(x) for x in full32], [top5(x) for x in full16]
    records, agree, total = [], 0, 0
    for (p, d), s, (i32, v32), (i16, v16) in zip(SEQS, seqs, fp32, bf16):
        agree += int((i32[:, 0] == i16[:, 0]).sum())
        total += len(s)
        records.append({"tokens": s, "n_prompt": p,
                        "hf_bf16": {"ids": i16.tolist(), "logits": v16.tolist()},
                        "hf_fp32": {"ids": i32.tolist(), "logits": v32.tolist()}})
    meta = {"transformers": transformers.__version__, "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0), "params": sum(p.numel() for p in model.parameters()),
            "hf_bf16_vs_fp32_top1": agree / total, "hf_bf16_vs_fp32_worst_rms_rel": rms,
            "hf_bf16_vs_fp32_worst_rel": worst, "positions": total, "sequences": records}
    with open(os.path.join(out, "topk.json"), "w") as f:
        json.dump(meta, f)
    print(json.dumps({k: v for k, v in meta.items() if k != "sequences"} | {"seconds": round(time.time() - t0, 1)}),
          flush=True)


if __name__ == "__main__":
    main()
