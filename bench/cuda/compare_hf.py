# Ratio table of the engine benchmark (`m1 bench engine --device cuda`, its JSON line) against the
# transformers baseline (bench/cuda/hf_baseline.py, JSON lines), both run in the same device call.
# Usage: python3 bench/cuda/compare_hf.py ENGINE_LOG HF_LOG   (prints a table and one JSON line)
import json, sys


def lines(path):
    for raw in open(path, errors="replace"):
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                yield json.loads(raw)
            except ValueError:
                pass


eng = next((j for j in lines(sys.argv[1]) if j.get("bench") == "engine_cuda"), None)
hf = list(lines(sys.argv[2]))
if eng is None:
    sys.exit("no engine JSON line in " + sys.argv[1])
hf_pre = {j["hf_prefill_tokens"]: j for j in hf if "hf_prefill_tokens" in j}
hf_dec = {j["hf_decode_ctx"]: j for j in hf if "hf_decode_ctx" in j}
meta = {k: v for j in hf for k, v in j.items() if k in ("device", "copy_TBps", "bf16_gemm_TFLOPs", "expert_sets", "params_B")}
print(f"engine vs transformers on {eng['device']} (transformers: {meta.get('device')}, expert sets: engine "
      f"{eng['expert_sets']}, transformers {meta.get('expert_sets')})")
print(f"ceilings: engine run copy {eng['copy_GBps']:.0f} GB/s, GEMM {eng['bf16_gemm_TFLOPs']:.0f} TFLOP/s; "
      f"transformers run copy {1000 * meta.get('copy_TBps', 0):.0f} GB/s, GEMM {meta.get('bf16_gemm_TFLOPs', 0):.0f} TFLOP/s")
rows = []
print("| figure | engine | transformers | ratio |")
print("|---|---|---|---|")
for p in eng["prefill"]:
    h = hf_pre.get(p["tokens"], {})
    r = p["tokens_per_s"] / h["tok_per_s"] if "tok_per_s" in h else None
    hs = f"{h['tok_per_s']:.0f} tok/s" if "tok_per_s" in h else h.get("error", "not run")[:40]
    print(f"| prefill {p['tokens']} | {p['tokens_per_s']:.0f} tok/s | {hs} | {f'{r:.2f}x' if r else '-'} |")
    rows.append({"figure": f"prefill_{p['tokens']}", "engine": p["tokens_per_s"], "hf": h.get("tok_per_s"), "ratio": r})
for d in eng["decode"]:
    h = hf_dec.get(d["context"], {})
    r = h["ms_per_token"] / d["ms_per_token"] if "ms_per_token" in h else None
    hs = f"{h['ms_per_token']:.2f} ms" if "ms_per_token" in h else h.get("error", "not run")[:40]
    print(f"| decode ctx {d['context']} | {d['ms_per_token']:.3f} ms | {hs} | {f'{r:.1f}x faster' if r else '-'} |")
    rows.append({"figure": f"decode_{d['context']}", "engine_ms": d["ms_per_token"], "hf_ms": h.get("ms_per_token"), "speedup": r})
print(json.dumps({"bench": "engine_vs_hf", "device": eng["device"], "rows": rows}))
