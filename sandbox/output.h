// output: keeps a command's output within a byte cap while it streams in: the first half of the cap
// is kept verbatim, the last half in a ring buffer, and what falls between is counted, then shown as
// one marker line. Decision: head + tail rather than head only, because a build or test run puts the
// error summary at the end.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace m1::sandbox {

class OutputCapture {
 public:
  explicit OutputCapture(size_t cap);
  void add(std::string_view chunk);
  // Head, then "\n[... N bytes elided ...]\n" if anything was cut, then tail.
  std::string text() const;
  uint64_t total() const { return total_; }

 private:
  size_t head_cap_, tail_cap_;
  std::string head_;
  std::string ring_;   // tail_cap_ bytes once full; ring_start_ is the oldest byte
  size_t ring_start_ = 0;
  uint64_t total_ = 0;
};

}  // namespace m1::sandbox
