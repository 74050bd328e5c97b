// A per-key linearizability checker for a read/write/compare-and-set register: Wing and
// Gong's search with Lowe's memoisation of (linearized set, state), as Porcupine does.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace race_probe {

/// One operation on one register. `value` is a read's result (nullopt: the key was absent)
/// or a write's value; a cas sets `to` when the register holds `from`. A refused_cas is a
/// cas the store refused: an observation that the register did not hold `from` (it was
/// absent or held another value), which changes nothing.
struct RegisterOp {
  enum Kind { read, write, cas, refused_cas } kind = read;
  std::optional<int64_t> value;
  int64_t from = 0, to = 0;
  int64_t invoke = 0;
  /// When it returned; nullopt when its outcome is unknown (it may take effect any time
  /// after its invocation, or never).
  std::optional<int64_t> complete;
  size_t index = 0;  ///< the caller's index, for reports
};

enum class Linearizable { yes, no, unknown };

struct LinearizabilityResult {
  Linearizable verdict = Linearizable::yes;
  /// When no: the operations (caller's indexes) of the shortest prefix, by invocation, that
  /// is already not linearizable, narrowed to its last operation and those concurrent with it.
  std::vector<size_t> window;
};

/// Checks one register's history (ok operations, refused cas, and unknown writes and cas
/// with no completion; other failed operations and unknown reads must be left out by the
/// caller), starting from an absent key. Gives up with `unknown` at `deadline`: never a
/// false yes.
LinearizabilityResult check_register(std::vector<RegisterOp> ops,
                                     std::chrono::steady_clock::time_point deadline);

}  // namespace race_probe
