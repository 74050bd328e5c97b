// Latency histogram: log-linear buckets (HdrHistogram's idea), ~1.6% precision, fixed memory.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace envkit {

/// Records durations from 1 µs to ~1.2 hours in 64 linear sub-buckets per power of two, so
/// any percentile is within 1/64 of the true value. Not thread-safe: keep one per thread
/// and merge().
class LatencyHistogram {
 public:
  void record(std::chrono::microseconds d);
  void merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  std::chrono::microseconds min() const { return std::chrono::microseconds(count_ ? min_ : 0); }
  std::chrono::microseconds max() const { return std::chrono::microseconds(max_); }
  double mean_us() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }
  /// The value at percentile `p` (0..100): the smallest recorded bucket with at least p% of
  /// values at or below it, reported as that bucket's upper edge (never optimistic).
  std::chrono::microseconds percentile(double p) const;

 private:
  static constexpr int kSubBits = 6;  // 64 sub-buckets
  static constexpr int kMaxExponent = 32;
  static constexpr size_t kBuckets = (kMaxExponent + 1) << kSubBits;
  static size_t index_of(uint64_t us);
  static uint64_t upper_edge(size_t index);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0, sum_ = 0, min_ = UINT64_MAX, max_ = 0;
};

}  // namespace envkit
