// Prometheus exposition format (text 0.0.4): HELP and TYPE once a family, escaped labels.
#include <envkit/metrics.hpp>

#include <cmath>
#include <cstdio>

#include <envkit/durable_file.hpp>

namespace envkit {
namespace {

std::string escape_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

void MetricsFile::add(std::string_view name, std::string_view type, std::string_view help, double value,
                      const Labels& labels) {
  samples_.push_back({"envkit_" + std::string(name), std::string(type), std::string(help), labels, value});
}

std::string MetricsFile::render() const {
  std::string out;
  std::vector<std::string> described;
  for (const auto& s : samples_) {
    bool seen = false;
    for (const auto& d : described) seen = seen || d == s.name;
    if (!seen) {
      out += "# HELP " + s.name + " " + s.help + "\n# TYPE " + s.name + " " + s.type + "\n";
      described.push_back(s.name);
    }
    out += s.name;
    if (!s.labels.empty()) {
      out += "{";
      for (size_t i = 0; i < s.labels.size(); ++i) {
        out += (i ? "," : "") + s.labels[i].first + "=\"" + escape_label(s.labels[i].second) + "\"";
      }
      out += "}";
    }
    out += " " + format_value(s.value) + "\n";
  }
  return out;
}

Status MetricsFile::write(const std::string& path) const { return write_file_atomically(path, render(), 0644); }

}  // namespace envkit
