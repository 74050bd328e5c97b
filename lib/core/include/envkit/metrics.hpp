// Prometheus text-format metrics written atomically for node_exporter's textfile collector.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <envkit/result.hpp>

namespace envkit {

/// Collects samples and writes them as one .prom file (temp, fsync, rename), so the
/// collector never reads half a file. Names get the "envkit_" prefix.
class MetricsFile {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  /// Adds a sample. `type` is "gauge" or "counter"; HELP/TYPE lines are written once a name.
  void add(std::string_view name, std::string_view type, std::string_view help, double value,
           const Labels& labels = {});
  /// The file's text.
  std::string render() const;
  /// Writes render() to `path` atomically (mode 0644: the collector runs as another user).
  Status write(const std::string& path) const;

 private:
  struct Sample {
    std::string name, type, help;
    Labels labels;
    double value;
  };
  std::vector<Sample> samples_;
};

}  // namespace envkit
