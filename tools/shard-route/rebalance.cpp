// rebalance OLD NEW: moves every document the new map places on another store, in four
// phases (copy -> verify -> switch -> delete) recorded in a small state file, so that a run
// killed at any point and started again finishes with every document once, on the shard the
// new map names, and no source document is deleted before its copy was verified.
//
// Each phase is idempotent on its own (put replaces by key, verify re-reads, delete checks
// the copy first), so resuming means running the recorded phase again from its start; the
// state file is what keeps a resumed run from copying stale documents over newer ones once
// the new map is live (after the switch). See shard-route(1), REBALANCE.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <map>

#include <envkit/bytes.hpp>
#include <envkit/durable_file.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/json.hpp>
#include <envkit/log.hpp>
#include <envkit/posix.hpp>
#include <envkit/signals.hpp>

#include "shard-route/run.hpp"
#include "shard-route/store.hpp"

namespace shard_route {

using envkit::Error;
using envkit::Failure;
using envkit::Result;
using envkit::Status;
using envkit::fail;

namespace {

enum class Phase { copy, verify, switch_map, delete_moved, done };
constexpr const char* kPhases[] = {"copy", "verify", "switch", "delete", "done"};
constexpr int kVerifyPasses = 5;  // a pass that repairs nothing ends the phase

std::string digest(const std::string& text) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(envkit::fnv1a64(text)));
  return hex;
}

// The state file: which two maps (by content), which namespace, which phase to run next.
struct State {
  std::string old_digest, new_digest, ns;
  Phase phase = Phase::copy;
};

Result<std::optional<State>> read_state(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return std::optional<State>{};
  auto text = envkit::read_file(path, 1 << 16);
  if (!text) return text.error();
  auto bad = [&](const std::string& why) { return fail(Failure::bad_data, path + ": not a rebalance state file: " + why); };
  auto doc = envkit::parse_json(*text);
  if (!doc || !doc->IsObject()) return bad("not a JSON object");
  State s;
  auto text_of = [&](const char* name, std::string& out) {
    const envkit::JsonValue* v = envkit::find_member(*doc, name);
    if (!v || !v->IsString()) return false;
    out.assign(v->GetString(), v->GetStringLength());
    return true;
  };
  std::string phase;
  if (!text_of("old_map", s.old_digest) || !text_of("new_map", s.new_digest) || !text_of("namespace", s.ns) ||
      !text_of("phase", phase)) {
    return bad("a field is missing");
  }
  for (size_t i = 0; i < std::size(kPhases); ++i) {
    if (phase == kPhases[i]) {
      s.phase = static_cast<Phase>(i);
      return std::optional<State>{s};
    }
  }
  return bad("unknown phase '" + phase + "'");
}

Status write_state(const std::string& path, const State& s, const Config& config) {
  envkit::JsonWriter w;
  w.begin_object().key("old").string(config.args[0]).key("new").string(config.args[1]);
  w.key("old_map").string(s.old_digest).key("new_map").string(s.new_digest).key("namespace").string(s.ns);
  w.key("phase").string(kPhases[static_cast<int>(s.phase)]).end_object();
  auto file = envkit::AtomicFile::create(path, 0644);
  if (!file) return file.error();
  if (auto st = file->write(w.take() + "\n"); !st) return st;
  return file->commit();
}

struct Counts {
  uint64_t scanned = 0, stay = 0, unkeyed = 0;
  uint64_t copied = 0, verified = 0, repaired = 0, deleted = 0, kept = 0;
  std::map<std::pair<std::string, std::string>, uint64_t> moves;
};

class Rebalancer {
 public:
  Rebalancer(Session old_s, Session new_s, size_t batch, std::chrono::milliseconds pause)
      : old_(std::move(old_s)), new_(std::move(new_s)), batch_(batch), pause_(pause) {}

  const Counts& counts() const { return counts_; }

  // copy: every document of every old shard whose key the new map places on another store
  // is written there (batched per target).
  Status copy() {
    return each_moving_batch("copy", [&](int to) { return flush(to); }, true);
  }

  // verify: every moving document is read back from its target (a batch a query) and
  // compared as JSON values; a missing or different copy is written again, and then the
  // whole pass is repeated, up to `passes` times, until one finds nothing to write.
  // `converge` false: one pass is enough (writers are still going: the switch's critical
  // section makes the passes that must converge).
  Status verify(int passes, bool converge) {
    for (int pass = 1; pass <= passes; ++pass) {
      uint64_t repaired = counts_.repaired;
      if (auto st = each_moving_batch("verify", [&](int to) { return check(to); }, false); !st) return st;
      if (counts_.repaired == repaired || !converge) return {};
      envkit::log_info("verify pass " + std::to_string(pass) + ": " + std::to_string(counts_.repaired - repaired) +
                       " copies missing or different, written again");
    }
    return Error{envkit::Exit::temp_fail, "documents on the old shards keep changing (" + std::to_string(passes) +
                                        " verify passes): stop their writers, or let them write through --switch's map"};
  }

  // delete: on each old shard, the documents the new map places on another store are
  // deleted once their copy is seen there; one whose copy is missing is kept and reported.
  Status delete_moved() {
    // Keys are collected during the scan and deleted after it: a MySQL shard streams its
    // scan on the connection the deletes need.
    std::map<int, std::map<int, std::vector<std::string>>> doomed;  // old shard -> target -> keys
    auto st = each_moving("delete", [&](int from, int to, std::string key, std::string_view) -> Status {
      doomed[from][to].push_back(std::move(key));
      return {};
    }, false);
    if (!st) return st;
    for (auto& [from, targets] : doomed) {
      auto source = old_.store(from);
      if (!source) return source.error();
      for (auto& [to, keys] : targets) {
        auto target = new_.store(to);
        if (!target) return target.error();
        for (size_t at = 0; at < keys.size(); at += batch_) {
          if (envkit::stop_requested()) return fail(Failure::interrupted, "interrupted during delete");
          std::vector<std::string> chunk(keys.begin() + static_cast<std::ptrdiff_t>(at),
                                         keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), at + batch_)));
          auto copies = (*target)->get_many(chunk);
          if (!copies) return copies.error().context("shard " + new_.shard_name(to));
          std::vector<std::string> copied;
          for (auto& key : chunk) {
            if (copies->count(key)) {
              copied.push_back(std::move(key));
            } else {
              ++counts_.kept;
              envkit::log_warning("kept '" + key + "' on " + old_.shard_name(from) + ": no copy on " + new_.shard_name(to));
            }
          }
          auto gone = (*source)->del_many(copied);
          if (!gone) return gone.error().context("shard " + old_.shard_name(from));
          counts_.deleted += *gone;
          if (auto rested = rest("delete"); !rested) return rested;
        }
      }
    }
    return {};
  }

 private:
  // each_moving() with the moving documents gathered per target and handed to `drain(to)`
  // a batch at a time, the last part batches included.
  Status each_moving_batch(const char* phase, const std::function<Status(int to)>& drain, bool count) {
    auto st = each_moving(phase, [&](int, int to, std::string key, std::string_view json) -> Status {
      auto& batch = pending_[to];
      batch.push_back({std::move(key), std::string(json)});
      return batch.size() >= batch_ ? drain(to) : Status{};
    }, count);
    if (!st) return st;
    for (auto& [to, batch] : pending_) {
      if (auto d = drain(to); !d) return d;
    }
    return {};
  }

  using Visit = std::function<Status(int from, int to, std::string key, std::string_view json)>;

  // Calls `visit` for every document of every old shard that the new map places on another
  // store; `count` counts the phase's scan into the summary (once per run).
  Status each_moving(const char* phase, const Visit& visit, bool count) {
    for (int from : old_.all_shards()) {
      if (envkit::stop_requested()) return fail(Failure::interrupted, std::string("interrupted during ") + phase);
      auto source = old_.store(from);
      if (!source) return source.error();
      const std::string& from_url = old_.map.shards()[static_cast<size_t>(from)].url_text;
      uint64_t seen = 0;
      auto st = (*source)->scan("", "", 0, [&](std::string_view json) -> Status {
        if ((++seen & 1023) == 0 && envkit::stop_requested()) {
          return fail(Failure::interrupted, std::string("interrupted during ") + phase);
        }
        if (count) ++counts_.scanned;
        Result<std::string> key = document_key(json, old_.key_field);
        if (!key) {
          if (count) {
            ++counts_.unkeyed;
            envkit::log_warning("left on " + old_.shard_name(from) + ": " + key.error().message);
          }
          return {};
        }
        int to = new_.route(*key);
        if (to < 0) return fail(Failure::config, new_.map.path() + ": no shard for key '" + *key + "'");
        if (new_.map.shards()[static_cast<size_t>(to)].url_text == from_url) {
          if (count) ++counts_.stay;
          return {};
        }
        if (count) ++counts_.moves[{old_.shard_name(from), new_.shard_name(to)}];
        return visit(from, to, std::move(*key), json);
      });
      if (!st) return st.error().context("shard " + old_.shard_name(from));
    }
    return {};
  }

  Status flush(int to) {
    auto& batch = pending_[to];
    if (batch.empty()) return {};
    auto target = new_.store(to);
    if (!target) return target.error();
    if (auto st = (*target)->put(batch); !st) return st.error().context("shard " + new_.shard_name(to));
    counts_.copied += batch.size();
    batch.clear();
    return rest("copy");
  }

  // Compares one batch of copies on `to` with their sources; writes the missing or
  // different ones again.
  Status check(int to) {
    auto& batch = pending_[to];
    if (batch.empty()) return {};
    auto target = new_.store(to);
    if (!target) return target.error();
    std::vector<std::string> keys;
    keys.reserve(batch.size());
    for (const auto& d : batch) keys.push_back(d.key);
    auto copies = (*target)->get_many(keys);
    if (!copies) return copies.error().context("shard " + new_.shard_name(to));
    if (auto st = rest("verify"); !st) return st;
    std::vector<KeyedDocument> again;
    for (auto& d : batch) {
      auto copy = copies->find(d.key);
      if (copy != copies->end() && same_json(copy->second, d.json)) {
        ++counts_.verified;
      } else {
        again.push_back(std::move(d));
      }
    }
    batch.clear();
    if (again.empty()) return {};
    if (auto st = (*target)->put(again); !st) return st.error().context("shard " + new_.shard_name(to));
    counts_.repaired += again.size();
    return {};
  }

  // --pause: the shards' other clients get the time between two batches.
  Status rest(const char* phase) const {
    if (pause_.count() == 0) return {};
    if (!envkit::sleep_unless_stopped(pause_)) return fail(Failure::interrupted, std::string("interrupted during ") + phase);
    return {};
  }

  static bool same_json(std::string_view a, std::string_view b) {
    if (a == b) return true;
    auto x = envkit::parse_json(a);
    auto y = envkit::parse_json(b);
    return x && y && *x == *y;
  }

  Session old_, new_;
  size_t batch_;
  std::chrono::milliseconds pause_;
  std::map<int, std::vector<KeyedDocument>> pending_;
  Counts counts_;
};

}  // namespace

Result<envkit::Exit> run_rebalance(const Config& config) {
  const std::string& new_path = config.args[1];
  auto maps = load_map_pair(config);
  if (!maps) return maps.error();
  const std::string& ns_name = maps->ns_name;
  const std::string& new_text = maps->new_map.text();

  const std::string state_path = config.state_path.empty() ? new_path + ".rebalance" : config.state_path;
  // One run at a time per state file; the lock goes with the process, however it ends.
  auto lock = envkit::FileLock::acquire(state_path + ".lock");
  if (!lock) return lock.error();
  State state{digest(maps->old_map.text()), digest(new_text), ns_name, Phase::copy};
  auto saved = read_state(state_path);
  if (!saved) return saved.error();
  if (*saved) {
    const State& s = **saved;
    if (s.old_digest != state.old_digest || s.new_digest != state.new_digest || s.ns != state.ns) {
      return fail(Failure::config, state_path + ": the state of another rebalance (other maps or namespace); "
                                                "finish that one, or remove the file to start over");
    }
    state.phase = s.phase;
    if (state.phase != Phase::copy) envkit::log_info("resuming at " + std::string(kPhases[static_cast<int>(state.phase)]));
  }
  const Phase resumed_at = state.phase;
  if (!config.switch_path.empty() && state.phase < Phase::delete_moved) {
    // MAP.lock makes the writers that start from now on hold it (see the switch below);
    // readable by all, as they may run as other users.
    envkit::UniqueFd made(::open((config.switch_path + ".lock").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!made) return envkit::system_error(config.switch_path + ".lock", "create", errno);
  }

  auto old_s = Session::start(config, maps->old_map, maps->old_ns, ns_name);
  if (!old_s) return old_s.error();
  auto new_s = Session::start(config, maps->new_map, maps->new_ns, ns_name);
  if (!new_s) return new_s.error();
  new_s->key_field = old_s->key_field;  // one key for both: the documents are the same
  Rebalancer r(std::move(*old_s), std::move(*new_s), config.batch, config.pause.value);

  auto advance = [&](Phase next) -> Status {
    state.phase = next;
    return write_state(state_path, state, config);
  };
  if (!*saved) {
    if (auto st = write_state(state_path, state, config); !st) return st.error();
  }
  if (state.phase == Phase::copy) {
    if (auto st = r.copy(); !st) return st.error();
    envkit::log_info("copy: " + std::to_string(r.counts().copied) + " documents copied to their new shards");
    if (auto st = advance(Phase::verify); !st) return st.error();
  }
  if (state.phase == Phase::verify) {
    // With --switch the writers may still be at work; the critical section ends the passes.
    if (auto st = r.verify(config.switch_path.empty() ? kVerifyPasses : 1, config.switch_path.empty()); !st) {
      return st.error();
    }
    envkit::log_info("verify: " + std::to_string(r.counts().verified) + " copies equal to their source");
    if (auto st = advance(Phase::switch_map); !st) return st.error();
  }
  if (state.phase == Phase::switch_map) {
    if (!config.switch_path.empty()) {
      // The critical section: writers that route with MAP (shard-route put and del) hold
      // MAP.lock shared for each run; with it held exclusively none is writing, so one more
      // verify pass catches what they wrote through the old map since the last one, and the
      // next of them reads the new map.
      // Held until the state says the switch is done. A run killed after installing the
      // map but before that finds MAP already NEW: writers may have written through it
      // since, so it must not verify (copy the old documents again) but go on.
      auto section = envkit::FileLock::acquire(config.switch_path + ".lock", config.connection.io_timeout);
      if (!section) return section.error().context("waiting for the writers of " + config.switch_path);
      auto live = envkit::read_file(config.switch_path, new_text.size() + 1);
      if (!live || *live != new_text) {
        if (auto st = r.verify(kVerifyPasses, true); !st) return st.error();
        auto file = envkit::AtomicFile::create(config.switch_path, 0644);
        if (!file) return file.error();
        if (auto st = file->write(new_text); !st) return st.error();
        if (auto st = file->commit(); !st) return st.error();
        envkit::log_info("switch: " + config.switch_path + " is now " + new_path);
      }
      if (auto st = advance(Phase::delete_moved); !st) return st.error();
    } else if (auto st = advance(Phase::delete_moved); !st) {
      return st.error();
    }
  }
  if (state.phase == Phase::delete_moved) {
    if (auto st = r.delete_moved(); !st) return st.error();
    if (auto st = advance(Phase::done); !st) return st.error();
    ::unlink((state_path + ".lock").c_str());
  }

  const Counts& c = r.counts();
  envkit::JsonWriter w;
  w.begin_object().key("namespace").string(ns_name).key("state").string(state_path);
  w.key("resumed_at").string(kPhases[static_cast<int>(resumed_at)]).key("phase").string("done");
  w.key("copied").number(c.copied).key("verified").number(c.verified).key("repaired").number(c.repaired);
  w.key("deleted").number(c.deleted).key("kept").number(c.kept).key("unkeyed").number(c.unkeyed);
  w.key("moves").begin_array();
  for (const auto& [pair, n] : c.moves) {
    w.begin_object().key("from").string(pair.first).key("to").string(pair.second).key("documents").number(n).end_object();
  }
  w.end_array().end_object();
  std::cout << w.take() << '\n' << std::flush;
  if (!std::cout) return fail(Failure::local_io, "writing the summary to stdout");
  return c.kept || c.unkeyed ? envkit::Exit::failure : envkit::Exit::ok;
}

}  // namespace shard_route
