// queue-relay(1) lists every source and sink URL form from the registry table itself: the
// block between its url-table markers is generated from envkit::connectors(), so the man
// page cannot drift from what --help prints and the code opens.
#include <envkit/exit_status.hpp>
#include <envkit/registry.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace {

constexpr std::string_view kBegin = ".\\\" BEGIN url-table";
constexpr std::string_view kEnd = ".\\\" END url-table";

// One .TP entry per form: "FORM: what it does" becomes the form in bold, then the text.
void one(std::string& out, std::string_view text) {
  size_t split = text.find(": ");
  out += ".TP\n.B " + envkit::roff_escape(text.substr(0, split)) + "\n";
  if (split != std::string_view::npos) out += envkit::roff_escape(text.substr(split + 2)) + "\n";
}

// A row's parameters as --help prints them: a form per line indented two spaces or less,
// its text going on in lines indented further (joined here into one paragraph).
void entries(std::string& out, std::string_view parameters) {
  std::string current;
  size_t at = 0;
  while (at <= parameters.size()) {
    size_t nl = parameters.find('\n', at);
    std::string_view line = parameters.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    size_t indent = line.find_first_not_of(' ');
    if (indent != std::string_view::npos) {
      line.remove_prefix(indent);
      if (indent <= 2 && !current.empty()) {
        one(out, current);
        current.clear();
      }
      current += (current.empty() ? "" : " ") + std::string(line);
    }
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  if (!current.empty()) one(out, current);
}

std::string url_table_roff() {
  std::string out = ".SS Sources\n";
  for (const auto& c : envkit::connectors()) {
    if (c.open_source) entries(out, c.source_parameters);
  }
  out += ".SS Sinks\n";
  for (const auto& c : envkit::connectors()) {
    if (c.open_sink) entries(out, c.sink_parameters);
  }
  return out;
}

// ENVKIT_UPDATE_MAN=1 rewrites the block instead of comparing (then review the diff).
TEST(Registry, QueueRelayManPageListsEveryUrlForm) {
  const std::string path = ENVKIT_SOURCE_DIR "/man/queue-relay.1";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  auto begin = text.find(kBegin);
  auto end = text.find(kEnd);
  ASSERT_NE(begin, std::string::npos) << path << " has no " << kBegin;
  ASSERT_NE(end, std::string::npos) << path << " has no " << kEnd;
  auto body_start = text.find('\n', begin) + 1;
  std::string body = text.substr(body_start, end - body_start);
  const std::string expected = url_table_roff();
  if (std::getenv("ENVKIT_UPDATE_MAN") != nullptr && body != expected) {
    text.replace(body_start, end - body_start, expected);
    std::ofstream(path) << text;
    return;
  }
  EXPECT_EQ(body, expected) << path << ": the URL table differs from the registry; "
                            << "ENVKIT_UPDATE_MAN=1 envkit_unit_tests --gtest_filter=Registry.QueueRelayManPageListsEveryUrlForm";
}

}  // namespace
