// CudaBackend's step graphs, uploads, scratch and per-op profiling (see cuda_backend_impl.h for
// the replay contract). A step graph is recorded with stream capture in relaxed mode (scratch may
// grow during a capture); its host-array uploads become copies from pinned slots that a replay
// refills before cudaGraphLaunch.
#include <algorithm>
#include <cstdio>

#include "engine/cuda/cuda_backend_impl.h"

namespace m1::engine::cuda_impl {
namespace {
constexpr size_t kMaxGraphs = 16;  // recorded steps kept (one per live sequence state)
}

// ---- scratch --------------------------------------------------------------------------------

Scratch::~Scratch() {
  if (p_) owner_->dev_free(p_);
}

void* Scratch::get(size_t bytes) {
  if (bytes <= cap_) return p_;
  const size_t cap = std::max(bytes, cap_ * 3 / 2);
  if (owner_->mode() == CudaBackend::Mode::Capture) {
    if (p_) owner_->retire(p_);  // graphs recorded before (and this one) may point into it
  } else {
    // Queued kernels and recorded graphs may use the old buffer: wait, forget the graphs.
    owner_->drop_graphs();
    if (p_) owner_->dev_free(p_);
  }
  p_ = owner_->dev_malloc(cap);
  cap_ = cap;
  return p_;
}

// ---- uploads and graph bookkeeping ----------------------------------------------------------

void* CudaBackend::upload(const void* src, size_t n) {
  const size_t bytes = std::max<size_t>(n, 16);
  if (mode_ == Mode::Eager) {
    void* d = upload_.get(bytes);
    if (n) M1_CUDA_CHECK(cudaMemcpyAsync(d, src, n, cudaMemcpyHostToDevice, stream_));
    return d;
  }
  if (mode_ == Mode::Capture) {
    GraphUpload u;
    u.bytes = bytes;
    M1_CUDA_CHECK(cudaMallocHost(&u.pinned, bytes));
    u.dev = dev_malloc(bytes);
    if (n) std::memcpy(u.pinned, src, n);
    M1_CUDA_CHECK(cudaMemcpyAsync(u.dev, u.pinned, bytes, cudaMemcpyHostToDevice, stream_));
    cur_.uploads.push_back(u);
    return u.dev;
  }
  // Replay: stage into the recorded slot (the graph's previous run finished in begin_graph).
  if (upload_pos_ >= replay_->uploads.size() || replay_->uploads[upload_pos_].bytes != bytes) {
    replay_ok_ = false;
    ++upload_pos_;
    return nullptr;
  }
  GraphUpload& u = replay_->uploads[upload_pos_++];
  if (n) std::memcpy(u.pinned, src, n);
  return u.dev;
}

bool CudaBackend::record_or_check(uint64_t h) {
  if (mode_ == Mode::Capture) {
    cur_.sig.push_back(h);
    return true;
  }
  if (sig_pos_ >= replay_->sig.size() || replay_->sig[sig_pos_] != h) replay_ok_ = false;
  ++sig_pos_;
  return false;
}

namespace {
void destroy(CudaBackend& b, GraphRec& r) {
  if (r.done) {
    cudaEventSynchronize(r.done);
    cudaEventDestroy(r.done);
  }
  if (r.exec) cudaGraphExecDestroy(r.exec);
  for (auto& u : r.uploads) {
    cudaFreeHost(u.pinned);
    b.dev_free(u.dev);
  }
  r = GraphRec{};
}
}  // namespace

void CudaBackend::drop_graphs() {
  if (mode_ != Mode::Eager) return;  // never while recording or staging
  M1_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (auto& [key, r] : graphs_) destroy(*this, r);
  graphs_.clear();
  for (void* p : retired_) dev_free(p);
  retired_.clear();
}

void CudaBackend::set_graphs(bool on) {
  opt_.graphs = on;
  if (!on) drop_graphs();
}

bool CudaBackend::begin_graph(uint64_t key) {
  if (!opt_.graphs || profiling_ || mode_ != Mode::Eager) return false;
  auto it = graphs_.find(key);
  if (it != graphs_.end()) {
    replay_ = &it->second;
    M1_CUDA_CHECK(cudaEventSynchronize(replay_->done));  // its pinned slots are free to refill
    replay_->last_use = ++use_clock_;
    mode_ = Mode::Replay;
    sig_pos_ = upload_pos_ = 0;
    replay_ok_ = true;
    cur_key_ = key;
    return true;
  }
  if (graphs_.size() >= kMaxGraphs) {  // forget the least recently used step
    auto lru = std::min_element(graphs_.begin(), graphs_.end(),
                                [](const auto& a, const auto& b) { return a.second.last_use < b.second.last_use; });
    destroy(*this, lru->second);
    graphs_.erase(lru);
  }
  cur_ = GraphRec{};
  cur_key_ = key;
  mode_ = Mode::Capture;
  M1_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
  return true;
}

bool CudaBackend::end_graph() {
  if (mode_ == Mode::Replay) {
    mode_ = Mode::Eager;
    GraphRec* r = replay_;
    replay_ = nullptr;
    if (!replay_ok_ || sig_pos_ != r->sig.size() || upload_pos_ != r->uploads.size()) {
      destroy(*this, *r);  // the ops differ from the recording: record again
      graphs_.erase(cur_key_);
      return false;
    }
    M1_CUDA_CHECK(cudaGraphLaunch(r->exec, stream_));
    M1_CUDA_CHECK(cudaEventRecord(r->done, stream_));
    ++replays_;
    return true;
  }
  if (mode_ == Mode::Capture) {
    mode_ = Mode::Eager;
    cudaGraph_t g = nullptr;
    M1_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
    M1_CUDA_CHECK(cudaGraphInstantiate(&cur_.exec, g, 0));
    M1_CUDA_CHECK(cudaGraphDestroy(g));
    M1_CUDA_CHECK(cudaEventCreateWithFlags(&cur_.done, cudaEventDisableTiming));
    M1_CUDA_CHECK(cudaGraphLaunch(cur_.exec, stream_));
    M1_CUDA_CHECK(cudaEventRecord(cur_.done, stream_));
    cur_.last_use = ++use_clock_;
    graphs_[cur_key_] = std::move(cur_);
    cur_ = GraphRec{};
    ++captures_;
    return true;
  }
  return true;
}

// ---- profiling ------------------------------------------------------------------------------

void CudaBackend::set_profiling(bool on) { profiling_ = on; }

CudaBackend::Prof::Prof(CudaBackend* be, const char* op, double bytes, double flops, int64_t r, int64_t c,
                        const char* tag)
    : b(be) {
  if (!be->profiling_ || be->mode_ != Mode::Eager) return;
  ProfRec rec;
  rec.op = op;
  if (r >= 0 && c >= 0) rec.op += " " + std::to_string(r) + "x" + std::to_string(c);
  if (tag) rec.op += std::string(" ") + tag;
  rec.bytes = bytes;
  rec.flops = flops;
  for (cudaEvent_t* e : {&rec.a, &rec.b}) {
    if (be->event_pool_.empty()) {
      M1_CUDA_CHECK(cudaEventCreate(e));
    } else {
      *e = be->event_pool_.back();
      be->event_pool_.pop_back();
    }
  }
  M1_CUDA_CHECK(cudaEventRecord(rec.a, be->stream_));
  idx = long(be->prof_.size());
  be->prof_.push_back(std::move(rec));
}

CudaBackend::Prof::~Prof() {
  if (idx >= 0) M1_CUDA_CHECK(cudaEventRecord(b->prof_[size_t(idx)].b, b->stream_));
}

std::vector<OpProfile> CudaBackend::take_profile() {
  M1_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::vector<OpProfile> out;
  std::map<std::string, size_t> at;
  for (ProfRec& r : prof_) {
    float ms = 0;
    M1_CUDA_CHECK(cudaEventElapsedTime(&ms, r.a, r.b));
    auto it = at.find(r.op);
    if (it == at.end()) {
      it = at.emplace(r.op, out.size()).first;
      out.push_back(OpProfile{r.op, 0, 0, 0, 0});
    }
    OpProfile& p = out[it->second];
    p.calls += 1;
    p.ms += ms;
    p.bytes += r.bytes;
    p.flops += r.flops;
    event_pool_.push_back(r.a);
    event_pool_.push_back(r.b);
  }
  prof_.clear();
  return out;
}

}  // namespace m1::engine::cuda_impl
