// Result<T>: how failures cross module boundaries (no exceptions across them).
// A user mistake becomes an Error whose message names the thing and what was expected;
// only cli/ turns it into text on stderr and an exit code.
#pragma once
#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace m1 {

struct Error {
  std::string message;
  int code = 1;  // process exit code cli/ uses: 1 runtime failure, 2 usage error
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void> stand-in: holds only success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : err_(std::move(e)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { assert(!ok_); return err_; }

 private:
  Error err_;
  bool ok_ = true;
};
using Status = Result<void>;

inline Error make_error(std::string msg, int code = 1) { return Error{std::move(msg), code}; }

}  // namespace m1

// Early-return helpers for code that returns Result/Status.
#define M1_TRY(expr)                                   \
  do {                                                 \
    auto m1_try_r_ = (expr);                           \
    if (!m1_try_r_.ok()) return m1_try_r_.error();     \
  } while (0)
#define M1_CONCAT_(a, b) a##b
#define M1_CONCAT(a, b) M1_CONCAT_(a, b)
#define M1_ASSIGN_OR_RETURN(lhs, expr)                         \
  auto M1_CONCAT(m1_r_, __LINE__) = (expr);                    \
  if (!M1_CONCAT(m1_r_, __LINE__).ok()) return M1_CONCAT(m1_r_, __LINE__).error(); \
  lhs = std::move(M1_CONCAT(m1_r_, __LINE__)).value()
