// Where the register workload reads, writes and compares-and-sets when the target is not
// HTTP: Redis or Valkey, with one Lua script for compare-and-set. (The HTTP key-value
// endpoint of `race-probe serve`, and any with its shape, is driven by probe.cpp's HTTP path.)
#pragma once

#include <memory>

#include <envkit/result.hpp>

#include "race-probe/config.hpp"
#include "race-probe/stock.hpp"

namespace race_probe {

class RegisterTarget {
 public:
  virtual ~RegisterTarget() = default;
  /// Makes the probe's keys absent before the run (the checker starts every key absent).
  virtual envkit::Status reset(uint64_t keys) = 0;
  /// One worker's operations, with its own connection: fills op.outcome, op.status, op.error
  /// and a read's op.value for a read, write or cas of op.id. A compare-and-set refused
  /// because the key held another value is a fail with status 409, as over HTTP.
  virtual envkit::Result<Buyer> client() = 0;
};

/// redis://[:PASSWORD@]HOST[:PORT][/DB]?prefix=P&reset=true|false: key K is P+K (prefix
/// default "race-probe:"); reset=false leaves the keys as they are (for the second and later
/// of several clients sharing them). Connects to nothing until reset() or client().
envkit::Result<std::unique_ptr<RegisterTarget>> open_register_target(const Config& config);

}  // namespace race_probe
