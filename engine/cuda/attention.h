// Softmax attention over a paged KV cache (GQA), flash-decoding style: launchers.
// defines: kv_append, kv_append_at, attention_paged, attention_workspace_bytes, attention_prefill_tc
//
// Cache layout (engine/backend.h KvPoolShape): a page holds page_size tokens of one layer, K then
// V, each [page_size, Hkv, D] (K after RoPE); T is float (the backend) or bf16. pages is a device
// table [num_seqs, max_pages] of page base pointers: token p of sequence s lives in page
// pages[s * max_pages + p / page_size], slot p % page_size.
// Queries: q [NQ, Hq, D]; query n belongs to sequence q_seq[n] and sees the first q_len[n]
// tokens of its sequence (causal: decode has q_len = length, a prefill row at position p has
// q_len = p + 1). One kernel serves decode (NQ = batch) and prefill (NQ = new tokens).
// Each (query, kv head, split of the visible tokens) is one CTA; a second kernel merges splits.
// Supported: D in {16, 32, 64, 128}, Hq % Hkv == 0, Hq/Hkv <= 16.
#pragma once
#include <cstddef>

#include "engine/cuda/cuda_common.h"

namespace m1::cuda {

template <typename T>
struct PagedKV {
  T* const* pages = nullptr;  // [num_seqs, max_pages] device table of page base pointers
  int max_pages = 0;
  int page_size = 0;
  int hkv = 0;
  int d = 0;
};

// Writes T rows of k, v ([T, Hkv*D], row stride ld elements) of sequence `seq` at positions
// start .. start+T-1.
template <typename T>
void kv_append(const T* k, const T* v, int ld, int T_rows, int seq, int start, const PagedKV<T>& kv,
               cudaStream_t stream);

// As kv_append, row t at position positions[t] (device int64 [T_rows]): no position travels by
// value, so a decode step's launch is the same at every length (CUDA graph replay).
template <typename T>
void kv_append_at(const T* k, const T* v, int ld, int T_rows, int seq, const int64_t* positions, const PagedKV<T>& kv,
                  cudaStream_t stream);

// Bytes of fp32 scratch attention_paged needs for NQ queries with at most max_len visible tokens.
size_t attention_workspace_bytes(int NQ, int Hq, int D, int max_len);

// out = softmax(q K^T * scale) V per query head (head j reads kv head j / (Hq/Hkv)).
// q rows have stride q_ld elements. max_len: an upper bound of q_len (host value, sizes the grid).
// out [NQ, Hq, D]. q_seq, q_len: device arrays [NQ].
template <typename T>
void attention_paged(const T* q, int q_ld, const int* q_seq, const int* q_len, int NQ, int Hq, int max_len,
                     const PagedKV<T>& kv, float scale, T* out, void* workspace, cudaStream_t stream);

// Causal prefill on tensor cores (attention_prefill.cu): T new queries of sequence 0 of `kv` at
// positions pos0 .. pos0+T-1 (their K/V already written), each over keys 0 .. its position.
// q [T, Hq, D] fp32 (row stride q_ld elements; RoPE applied), out [T, Hq, D] fp32. Q, K, V enter
// the tensor cores as bf16 (fp32 accumulation, fp32 online softmax): bf16 tolerance, not fp32.
// Supported: D in {64, 128}, Hq % Hkv == 0; kv pages fp32.
bool attention_prefill_tc_supported(int D, int Hq, int Hkv);
void attention_prefill_tc(const float* q, int q_ld, int T, int Hq, int pos0, const PagedKV<float>& kv, float scale,
                          float* out, cudaStream_t stream);

}  // namespace m1::cuda
