// Log-linear latency buckets: exponent from the highest set bit, then 6 bits of mantissa.
#include <envkit/histogram.hpp>

#include <algorithm>
#include <bit>
#include <cmath>

namespace envkit {

size_t LatencyHistogram::index_of(uint64_t us) {
  if (us < (uint64_t{1} << kSubBits)) return static_cast<size_t>(us);  // exact below 64 µs
  int exponent = std::bit_width(us) - 1 - kSubBits + 1;                 // >= 1
  if (exponent > kMaxExponent) return kBuckets - 1;
  uint64_t mantissa = us >> (exponent - 1);  // in [64, 128)
  return (static_cast<size_t>(exponent) << kSubBits) + static_cast<size_t>(mantissa - (uint64_t{1} << kSubBits));
}

uint64_t LatencyHistogram::upper_edge(size_t index) {
  size_t exponent = index >> kSubBits;
  uint64_t sub = index & ((size_t{1} << kSubBits) - 1);
  if (exponent == 0) return sub;
  uint64_t mantissa = sub + (uint64_t{1} << kSubBits);
  return ((mantissa + 1) << (exponent - 1)) - 1;
}

void LatencyHistogram::record(std::chrono::microseconds d) {
  uint64_t us = d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
  ++buckets_[index_of(us)];
  ++count_;
  sum_ += us;
  min_ = std::min(min_, us);
  max_ = std::max(max_, us);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

std::chrono::microseconds LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return std::chrono::microseconds(0);
  p = std::clamp(p, 0.0, 100.0);
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::max<uint64_t>(rank, 1);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::chrono::microseconds(std::min(upper_edge(i), max_));
  }
  return std::chrono::microseconds(max_);
}

}  // namespace envkit
