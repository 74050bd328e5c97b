// Errors as values: every fallible call below main() returns Result<T>; main() maps it to an exit status.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace envkit {

/// Process exit statuses, sysexits-style; which failure gets which is decided once, in
/// kFailureTable (envkit/exit_status.hpp; docs/architecture.md, "Exit statuses").
/// proxy-check uses the Nagios set instead.
enum class Exit : int {
  ok = 0,
  failure = 1,      ///< generic: some items failed (coreutils: keep going, fail at the end)
  usage = 64,       ///< EX_USAGE: bad command line
  data = 65,        ///< EX_DATAERR: bad input data
  no_input = 66,    ///< EX_NOINPUT: an input file is missing or unreadable
  unavailable = 69, ///< EX_UNAVAILABLE: a server or service cannot be reached
  software = 70,    ///< EX_SOFTWARE: internal error
  io = 74,          ///< EX_IOERR: reading or writing a local file failed
  temp_fail = 75,   ///< EX_TEMPFAIL: try again later (timeouts, locks held)
  config = 78,      ///< EX_CONFIG: bad configuration file
};

/// The numeric status for `exit()`/return from main.
constexpr int to_int(Exit e) { return static_cast<int>(e); }

/// The kind of a failure, defined with its table in <envkit/exit_status.hpp>.
enum class Failure : int;

/// What went wrong, and the exit status it maps to. Messages read "what happened: why".
/// Errors made by fail() (envkit/exit_status.hpp) also say which kind of failure it was, so
/// that a caller can tell, say, an unreadable CA file (ours) from a certificate that does
/// not verify (the server's), which share a status.
struct Error {
  Error() = default;
  Error(Exit c, std::string m, std::optional<Failure> k = std::nullopt)
      : code(c), message(std::move(m)), kind(k) {}

  Exit code = Exit::software;
  std::string message;
  std::optional<Failure> kind;  ///< set by fail(); empty for an Error built by hand

  /// The same error with "context: " in front, for adding what was being done.
  Error context(std::string_view what) const& {
    return Error{code, std::string(what) + ": " + message, kind};
  }
};

/// A value or an Error. Implicitly built from either, so `return Error{...};` and
/// `return value;` both work.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}     // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

/// Result of an operation with no value.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { assert(!ok_); return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace envkit
