// output: see output.h.
#include "sandbox/output.h"

#include <algorithm>

namespace m1::sandbox {

OutputCapture::OutputCapture(size_t cap) : head_cap_(cap / 2), tail_cap_(cap - cap / 2) {}

void OutputCapture::add(std::string_view chunk) {
  total_ += chunk.size();
  size_t h = std::min(chunk.size(), head_cap_ - head_.size());
  head_.append(chunk.substr(0, h));
  chunk.remove_prefix(h);
  if (chunk.empty() || tail_cap_ == 0) return;
  if (chunk.size() >= tail_cap_) {  // the chunk alone fills the tail
    ring_.assign(chunk.substr(chunk.size() - tail_cap_));
    ring_start_ = 0;
    return;
  }
  if (ring_.size() < tail_cap_) {
    size_t room = tail_cap_ - ring_.size();
    size_t take = std::min(room, chunk.size());
    ring_.append(chunk.substr(0, take));
    chunk.remove_prefix(take);
  }
  while (!chunk.empty()) {  // overwrite the oldest bytes
    size_t n = std::min(chunk.size(), tail_cap_ - ring_start_);
    ring_.replace(ring_start_, n, chunk.substr(0, n));
    ring_start_ = (ring_start_ + n) % tail_cap_;
    chunk.remove_prefix(n);
  }
}

std::string OutputCapture::text() const {
  std::string out = head_;
  uint64_t kept = head_.size() + ring_.size();
  if (total_ > kept)
    out += "\n[... " + std::to_string(total_ - kept) + " bytes elided ...]\n";
  out.append(ring_, ring_start_, std::string::npos);
  out.append(ring_, 0, ring_start_);
  return out;
}

}  // namespace m1::sandbox
