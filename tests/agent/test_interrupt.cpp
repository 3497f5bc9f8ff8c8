// tests/agent/test_interrupt.cpp: InterruptGuard's second Ctrl-C, in death tests (the "threadsafe"
// style re-runs this binary for the one test, so the guard's watcher thread starts clean).
// The first Ctrl-C's path (cancel flag -> tool killed -> `interrupted`) is covered by test_loop.cpp
// and, through the m1 binary, by tests/e2e.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "agent/interrupt.h"
#include "test_util.h"

namespace m1::agent {
namespace {

class Interrupt : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(Interrupt, FirstSetsTheFlagOnly) {
  InterruptGuard g;
  EXPECT_FALSE(g.flag()->load());
  raise(SIGINT);
  EXPECT_TRUE(g.flag()->load());  // and the process is still here
}

TEST_F(Interrupt, SecondExitsWith130AfterTheCallbackRecordedTheStop) {
  // Not test::temp_dir: the death test's child re-runs this body in another process (other pid),
  // and must write where the parent looks.
  const auto mark = std::filesystem::path(M1_BINARY_DIR) / "agent-interrupt-test-recorded";
  std::filesystem::remove(mark);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EXIT(
      {
        InterruptGuard g;
        g.on_exit_now([&] { std::ofstream(mark) << "interrupted"; });
        raise(SIGINT);
        raise(SIGINT);
        std::this_thread::sleep_for(std::chrono::seconds(30));  // the main thread is busy elsewhere
      },
      ::testing::ExitedWithCode(130), "second interrupt");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 15);
  std::ifstream in(mark);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "interrupted");
  std::filesystem::remove(mark);
}

TEST_F(Interrupt, SecondExitsEvenWhenTheCallbackHangs) {
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EXIT(
      {
        InterruptGuard g;
        g.on_exit_now([] { std::this_thread::sleep_for(std::chrono::seconds(60)); });
        raise(SIGINT);
        raise(SIGINT);
        std::this_thread::sleep_for(std::chrono::seconds(60));
      },
      ::testing::ExitedWithCode(130), "second interrupt");
  // The grace period (2 s), not the callback's 60 s; generous for a loaded machine.
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(secs, InterruptGuard::kExitGraceSeconds - 0.5);
  EXPECT_LT(secs, 20);
}

TEST_F(Interrupt, AThirdExitsAtOnce) {
  EXPECT_EXIT(
      {
        InterruptGuard g;
        g.on_exit_now([] { std::this_thread::sleep_for(std::chrono::seconds(60)); });
        raise(SIGINT);
        raise(SIGINT);
        raise(SIGINT);
        std::this_thread::sleep_for(std::chrono::seconds(60));
      },
      ::testing::ExitedWithCode(130), "exiting now");
}

TEST_F(Interrupt, TheGuardRestoresTheHandlersAndCanBeMadeAgain) {
  struct sigaction before {};
  sigaction(SIGINT, nullptr, &before);
  {
    InterruptGuard g;
    raise(SIGINT);
    EXPECT_TRUE(g.flag()->load());
  }
  struct sigaction after {};
  sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
  InterruptGuard again;  // a fresh count and flag: one interrupt only cancels
  EXPECT_FALSE(again.flag()->load());
  raise(SIGINT);
  EXPECT_TRUE(again.flag()->load());
}

// The CLI's guard: after an interrupt, a Ctrl-C that lands while the process finishes still exits
// with 130 (the default action would look like a crash to the caller).
TEST_F(Interrupt, AfterAnInterruptTheCliGuardLeavesAnExitNowHandler) {
  EXPECT_EXIT(
      {
        {
          InterruptGuard g(/*exiting_after_interrupt=*/true);
          raise(SIGINT);
        }
        raise(SIGINT);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(130), "exiting now");
  // Without an interrupt it restores the previous handlers as the library guard does.
  struct sigaction before {};
  sigaction(SIGINT, nullptr, &before);
  { InterruptGuard g(/*exiting_after_interrupt=*/true); }
  struct sigaction after {};
  sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

}  // namespace
}  // namespace m1::agent
