"""Exports a transformers MiniMaxForCausalLM to the ORIGINAL MiniMax-M1 checkpoint format (config.json
with attn_type_list / layernorm_*_alpha/beta / rotary_dim; per-expert block_sparse_moe.experts.E.w1/w2/w3
tensor names), which `m1`'s engine loads (it reads the hf format too; the original one is what users
download)."""
import json
import os

import torch
from safetensors.torch import save_file


def original_config(cfg, dtype_name):
    return {
        "architectures": ["MiniMaxM1ForCausalLM"], "model_type": "minimax_m1",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim,
        # transformers' port rotates whole heads, so the exported model says so.
        "rotary_dim": cfg.head_dim, "rope_theta": cfg.rope_parameters["rope_theta"],
        "num_local_experts": cfg.num_local_experts, "num_experts_per_tok": cfg.num_experts_per_tok,
        "attn_type_list": [0 if t == "linear_attention" else 1 for t in cfg.layer_types],
        "layernorm_full_attention_alpha": cfg.full_attn_alpha_factor,
        "layernorm_full_attention_beta": cfg.full_attn_beta_factor,
        "layernorm_linear_attention_alpha": cfg.linear_attn_alpha_factor,
        "layernorm_linear_attention_beta": cfg.linear_attn_beta_factor,
        "layernorm_mlp_alpha": cfg.mlp_alpha_factor, "layernorm_mlp_beta": cfg.mlp_beta_factor,
        "postnorm": True, "shared_intermediate_size": 0, "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings, "block_size": cfg.block_size,
        "tie_word_embeddings": False, "torch_dtype": dtype_name, "hidden_act": "silu",
    }


# Lightning attention's decay tables: transformers registers them as buffers (so they are in
# state_dict), but they follow from the config alone and the M1 checkpoint format has no such tensors
# (at block size 256 they would be a sixth of this small model's bytes).
DERIVED = (".slope_rate", ".query_decay", ".key_decay", ".diagonal_decay")


def original_tensors(model, cfg, dtype):
    out = {}
    inter = cfg.intermediate_size
    for k, v in model.state_dict().items():
        if k.endswith(DERIVED):  # transformers' buffers computed from the config: not checkpoint data
            continue
        v = v.detach().to(dtype).contiguous()
        if ".mlp.gate.weight" in k:  # the router stays fp32, as M1's checkpoint keeps it
            out[k.replace(".mlp.gate.weight", ".block_sparse_moe.gate.weight")] = v.float().contiguous()
        elif k.endswith(".mlp.experts.gate_up_proj"):
            base = k[: -len(".mlp.experts.gate_up_proj")]
            for e in range(v.shape[0]):
                out[f"{base}.block_sparse_moe.experts.{e}.w1.weight"] = v[e, :inter].contiguous()
                out[f"{base}.block_sparse_moe.experts.{e}.w3.weight"] = v[e, inter:].contiguous()
        elif k.endswith(".mlp.experts.down_proj"):
            base = k[: -len(".mlp.experts.down_proj")]
            for e in range(v.shape[0]):
                out[f"{base}.block_sparse_moe.experts.{e}.w2.weight"] = v[e].contiguous()
        elif ".mlp.experts." in k:
            out[k.replace(".mlp.", ".block_sparse_moe.")] = v
        else:
            out[k] = v
    return out


def export_original(model, cfg, out_dir, dtype=torch.bfloat16, shard_bytes=15 << 20):
    """config.json + shards of at most shard_bytes + model.safetensors.index.json (the layout of the
    real checkpoint; small shards also fit the GPU machine's 16 MiB-per-file return limit)."""
    os.makedirs(out_dir, exist_ok=True)
    name = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}[dtype]
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(original_config(cfg, name), f, indent=1)
    tensors = original_tensors(model, cfg, dtype)
    shards, cur, cur_bytes = [], {}, 0
    for k, v in tensors.items():
        nb = v.numel() * v.element_size()
        if cur and cur_bytes + nb > shard_bytes:
            shards.append(cur)
            cur, cur_bytes = {}, 0
        cur[k] = v
        cur_bytes += nb
    if cur:
        shards.append(cur)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(out_dir, fname), metadata={"format": "pt"})
        for k, v in shard.items():
            weight_map[k] = fname
            total += v.numel() * v.element_size()
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
