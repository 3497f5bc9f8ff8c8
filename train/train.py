#!/usr/bin/env python3
"""Trains the small M1-architecture model (transformers.MiniMaxForCausalLM: lightning + softmax layers
in the 7:1 pattern, top-2 MoE) on trajectory token data, then exports it in the original M1 format.

Runs on the GPU machine (python3 there has torch + transformers). Reproducible from --seed: the model's
initial weights, the data order and dropout-free training depend on it alone.

Data (made here by `m1`'s own tokenizer and chat format, see README.md): DATA/tokens.bin (index.json's
"dtype": uint16 or int32, LE),
DATA/mask.bin (uint8, 1 where the token is the model's own output and is trained on), DATA/index.json
{"sequences": [[offset, length], ...], "vocab_size": V, "eos_id": E, "bos_id": B}.

  python3 train/train.py --data DATA --out OUT [--minutes 20] [--seed 0] [--max-len 4096]
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from transformers import MiniMaxConfig, MiniMaxForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_m1 import export_original  # noqa: E402

ALPHA = 3.5565588200778455  # 160 ** 0.25, M1's residual scale (kept so the model is M1-shaped)


def model_config(vocab, a):
    layers = a.layers
    return MiniMaxConfig(
        vocab_size=vocab, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, head_dim=a.hidden // a.heads,
        num_local_experts=a.experts, num_experts_per_tok=2,
        layer_types=(["linear_attention"] * 7 + ["full_attention"]) * (layers // 8), block_size=a.block,
        full_attn_alpha_factor=ALPHA, linear_attn_alpha_factor=ALPHA, mlp_alpha_factor=ALPHA,
        full_attn_beta_factor=1.0, linear_attn_beta_factor=1.0, mlp_beta_factor=1.0,
        rms_norm_eps=1e-5, rope_parameters={"rope_theta": 1e6, "rope_type": "default"},
        max_position_embeddings=a.max_len * 4, tie_word_embeddings=False, sliding_window=None,
        router_aux_loss_coef=0.01, output_router_logits=True)


def load_data(path):
    idx = json.load(open(os.path.join(path, "index.json")))
    dtype = {"uint16": "<u2", "int32": "<i4"}[idx.get("dtype", "int32")]
    tokens = np.fromfile(os.path.join(path, "tokens.bin"), dtype=dtype).astype(np.int64)
    mask = np.fromfile(os.path.join(path, "mask.bin"), dtype=np.uint8)
    assert len(tokens) == len(mask), "tokens.bin and mask.bin differ in length"
    seqs = [(o, n) for o, n in idx["sequences"]]
    return idx, tokens, mask, seqs


def batches(seqs, tokens, mask, max_len, tok_budget, rng):
    """Length-bucketed batches of whole trajectories, right-padded (causal: pads never reach earlier
    positions), at most tok_budget tokens a batch."""
    order = sorted(range(len(seqs)), key=lambda i: seqs[i][1])
    groups, cur, cur_max = [], [], 0
    for i in order:
        n = min(seqs[i][1], max_len)
        if cur and max(cur_max, n) * (len(cur) + 1) > tok_budget:
            groups.append(cur)
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, n)
    if cur:
        groups.append(cur)
    rng.shuffle(groups)
    for g in groups:
        n = max(min(seqs[i][1], max_len) for i in g)
        ids = np.zeros((len(g), n), dtype=np.int64)
        lab = np.full((len(g), n), -100, dtype=np.int64)
        ctx = np.full((len(g), n), -100, dtype=np.int64)
        for r, i in enumerate(g):
            o, ln = seqs[i]
            ln = min(ln, max_len)
            ids[r, :ln] = tokens[o:o + ln]
            m = mask[o:o + ln].astype(bool)
            lab[r, :ln] = np.where(m, tokens[o:o + ln], -100)
            ctx[r, :ln] = np.where(m, -100, tokens[o:o + ln])
        yield torch.from_numpy(ids), torch.from_numpy(lab), torch.from_numpy(ctx)


@torch.no_grad()
def parity_fixture(model, seqs, tokens, out_dir, n=384, steps=8):
    """Reference logits of the exported model for the engine's parity test: the weights rounded to
    bf16 exactly as exported, computed in fp32 on the CPU (no TF32, no kernel choices)."""
    ref = MiniMaxForCausalLM(model.config).float().eval()
    ref.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in model.state_dict().items()})
    o, ln = seqs[0]
    prompt = [int(t) for t in tokens[o:o + min(ln, n)]]
    logits = ref(torch.tensor([prompt]), use_cache=False).logits[0]
    ids = list(prompt)
    greedy = []
    for _ in range(steps):  # greedy continuation by full recompute (the unambiguous reference)
        nxt = int(ref(torch.tensor([ids]), use_cache=False).logits[0, -1].argmax())
        greedy.append(nxt)
        ids.append(nxt)
    full = ref(torch.tensor([ids]), use_cache=False).logits[0]
    json.dump({"prompt": prompt, "argmax": logits.argmax(-1).tolist(),
               "last_logits": logits[-4:].tolist(), "greedy": greedy,
               "greedy_logits": full[len(prompt):].tolist()},
              open(os.path.join(out_dir, "parity.json"), "w"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--tok-budget", type=int, default=65536, help="tokens per batch")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=16, help="a multiple of 8 (M1's 7:1 pattern)")
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=256)
    ap.add_argument("--block", type=int, default=256,
                    help="lightning block size: only how the prefill is computed (same math), fewer Python steps")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--context-loss", type=float, default=0.0,
                    help="weight of the loss on tokens that are not the model's own (0: only its turns)")
    a = ap.parse_args()

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    dev = "cuda"
    idx, tokens, mask, seqs = load_data(a.data)
    vocab = int(idx["vocab_size"])
    rng = random.Random(a.seed)
    held = set(rng.sample(range(len(seqs)), max(1, len(seqs) // 50)))
    train = [s for i, s in enumerate(seqs) if i not in held]
    val = [s for i, s in enumerate(seqs) if i in held]
    cfg = model_config(vocab, a)
    model = MiniMaxForCausalLM(cfg).to(dev)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0, 0.02)
    nparam = sum(p.numel() for p in model.parameters())
    print(json.dumps({"params": nparam, "train_seqs": len(train), "val_seqs": len(val),
                      "train_tokens": int(sum(n for _, n in train)), "vocab": vocab}), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    budget_s = a.minutes * 60
    t0, step, epoch = time.time(), 0, 0
    warm = 100

    def lr_at(frac):
        return a.lr * min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    @torch.no_grad()
    def evaluate():
        model.eval()
        tot, cnt, right = 0.0, 0, 0
        for ids, lab, _ in batches(val, tokens, mask, a.max_len, a.tok_budget, random.Random(0)):
            ids, lab = ids.to(dev), lab.to(dev)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(ids).logits.float()
            pred = logits[:, :-1].argmax(-1)
            tgt = lab[:, 1:]
            m = tgt != -100
            tot += torch.nn.functional.cross_entropy(logits[:, :-1][m], tgt[m], reduction="sum").item()
            cnt += int(m.sum())
            right += int((pred[m] == tgt[m]).sum())
        model.train()
        return tot / max(cnt, 1), right / max(cnt, 1)

    done = False
    while not done:
        epoch += 1
        for ids, lab, ctx in batches(train, tokens, mask, a.max_len, a.tok_budget, rng):
            frac = (time.time() - t0) / budget_s
            if frac >= 1.0:
                done = True
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(frac)
            ids, lab = ids.to(dev), lab.to(dev)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(ids, labels=lab)
            loss = out.loss
            if a.context_loss > 0:
                # Also predict the prompt and tool outputs (file views, test runs, search hits), at a
                # small weight: their text repeats what came before (code quoted in tracebacks and
                # edits, names in search results), which trains the copying the model's own turns need.
                tgt = ctx[:, 1:].to(dev)
                m = tgt != -100
                if bool(m.any()):
                    logits = out.logits[:, :-1][m].float()
                    loss = loss + a.context_loss * torch.nn.functional.cross_entropy(logits, tgt[m])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % 50 == 0:
                print(json.dumps({"step": step, "epoch": epoch, "loss": round(loss.item(), 4),
                                  "lr": round(lr_at(frac), 6), "elapsed_s": round(time.time() - t0)}), flush=True)
            if step % 500 == 0:
                vl, va = evaluate()
                print(json.dumps({"step": step, "val_loss": round(vl, 4), "val_token_acc": round(va, 4)}), flush=True)
    vl, va = evaluate()
    print(json.dumps({"final_step": step, "epochs": epoch, "val_loss": vl, "val_token_acc": va,
                      "train_s": time.time() - t0}), flush=True)
    model = model.float().cpu()
    os.makedirs(a.out, exist_ok=True)
    export_original(model, cfg, a.out, dtype=torch.bfloat16)
    parity_fixture(model, val or train, tokens, a.out)
    json.dump({"seed": a.seed, "steps": step, "epochs": epoch, "val_loss": vl, "val_token_acc": va,
               "args": vars(a), "params": nparam}, open(os.path.join(a.out, "training.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
