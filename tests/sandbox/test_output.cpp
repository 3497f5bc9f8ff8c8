// OutputCapture: the head + tail cap, checked against the plain answer for many chunkings.
#include <gtest/gtest.h>

#include <string>

#include "sandbox/output.h"

namespace m1::sandbox {
namespace {

std::string expected(const std::string& all, size_t cap) {
  if (all.size() <= cap) return all;
  size_t head = cap / 2, tail = cap - head;
  return all.substr(0, head) + "\n[... " + std::to_string(all.size() - cap) + " bytes elided ...]\n" +
         all.substr(all.size() - tail);
}

TEST(OutputCapture, MatchesHeadPlusTailForEveryChunking) {
  std::string all;
  for (int i = 0; i < 5000; ++i) all += static_cast<char>('a' + (i * 7) % 26);
  for (size_t cap : {0u, 1u, 2u, 10u, 101u, 4096u, 5000u, 6000u}) {
    for (size_t chunk : {1u, 3u, 64u, 999u, 5000u}) {
      OutputCapture c(cap);
      for (size_t off = 0; off < all.size(); off += chunk) c.add(std::string_view(all).substr(off, chunk));
      EXPECT_EQ(c.text(), expected(all, cap)) << "cap " << cap << " chunk " << chunk;
      EXPECT_EQ(c.total(), all.size());
    }
  }
}

TEST(OutputCapture, ShortOutputIsKeptWhole) {
  OutputCapture c(64);
  c.add("hello ");
  c.add("world\n");
  EXPECT_EQ(c.text(), "hello world\n");
}

}  // namespace
}  // namespace m1::sandbox
