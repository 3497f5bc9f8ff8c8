// Softmax attention over a paged KV cache (GQA), flash-decoding style: launchers.
// defines: kv_append, attention_paged, attention_workspace_bytes
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

// Bytes of fp32 scratch attention_paged needs for NQ queries with at most max_len visible tokens.
size_t attention_workspace_bytes(int NQ, int Hq, int D, int max_len);

// out = softmax(q K^T * scale) V per query head (head j reads kv head j / (Hq/Hkv)).
// q rows have stride q_ld elements. max_len: an upper bound of q_len (host value, sizes the grid).
// out [NQ, Hq, D]. q_seq, q_len: device arrays [NQ].
template <typename T>
void attention_paged(const T* q, int q_ld, const int* q_seq, const int* q_len, int NQ, int Hq, int max_len,
                     const PagedKV<T>& kv, float scale, T* out, void* workspace, cudaStream_t stream);

}  // namespace m1::cuda
