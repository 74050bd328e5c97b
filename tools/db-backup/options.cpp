// db-backup's options: one set for every subcommand, bound to Config, cross-checked in
// check_config() against the subcommand they belong to.
#include <algorithm>
#include <iostream>

#include "db-backup/config.hpp"

namespace db_backup {

using envkit::Error;
using envkit::Exit;
using envkit::po::bool_switch;
using envkit::po::value;

namespace {

const char* kUsage =
    "db-backup dump --from URL --out DIR [--every DUR] [OPTION]...\n"
    "  or:  db-backup restore --from DIR --to URL [--replace] [--force]\n"
    "  or:  db-backup verify DIR [--against URL]\n"
    "  or:  db-backup diff DIR1 DIR2\n"
    "  or:  db-backup list DIR\n"
    "  or:  db-backup prune DIR --keep-last N [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--dry-run]";

const char* kSummary =
    "Consistent, streaming, verified backups of MySQL/MariaDB databases (and, through their\n"
    "backends, Redis keyspaces and MongoDB collections) to typed JSON Lines files with a\n"
    "manifest of SHA-256 checksums and row counts. Each backup is its own directory under\n"
    "DIR, named by its UTC start time, and is complete only once its manifest.json is there.";

const char* kAfter =
    "Examples:\n"
    "  db-backup dump --from mysql://backup@db:3306/iot --out /var/backups/iot -q\n"
    "  db-backup dump --from mysql://backup@db/iot --out DIR --every 1h --keep-last 24 --keep-daily 7\n"
    "  db-backup verify /var/backups/iot --against mysql://backup@db/iot\n"
    "  db-backup restore --from /var/backups/iot --to mysql://root@127.0.0.1/iot_restored\n"
    "  db-backup diff DIR/20261121T000000Z DIR/20261122T000000Z\n"
    "\n"
    "Exit status: 0 success (diff, verify --against: no differences); 1 differences found, or\n"
    "some objects failed; 64 usage; 65 corrupt or incomplete backup, or data the target\n"
    "refused; 66 no such backup or table; 69 server unreachable; 74 local I/O error;\n"
    "75 another db-backup holds DIR's lock, or stopped by a signal mid-backup; 78 refused\n"
    "credentials or configuration. See db-backup(1).";

constexpr const char* kCommands[] = {"dump", "restore", "verify", "diff", "list", "prune"};

envkit::Status check_config(Config& c, const envkit::OptionParser& parser) {
  auto usage = [](std::string m) { return Error{Exit::usage, std::move(m)}; };
  const std::string& cmd = c.command;
  // Which options each subcommand takes: anything else is a mistake worth saying.
  struct Allowed {
    const char* command;
    std::vector<std::string> options;
  };
  const std::vector<std::string> keep = {"keep-last", "keep-daily", "keep-weekly", "keep-monthly"};
  std::vector<std::string> dump_opts = {"from", "out", "tables", "exclude", "where", "threads", "chunk-rows",
                                        "compress", "every", "metrics-file", "no-progress"};
  dump_opts.insert(dump_opts.end(), keep.begin(), keep.end());
  std::vector<std::string> prune_opts = keep;
  prune_opts.push_back("dry-run");
  const std::vector<Allowed> allowed = {
      {"dump", dump_opts},
      {"restore", {"from", "to", "replace", "force", "threads", "batch-rows", "tables", "no-progress"}},
      {"verify", {"against"}},
      {"diff", {}},
      {"list", {}},
      {"prune", prune_opts},
  };
  const std::vector<std::string> all = {"from", "out", "to", "tables", "exclude", "where", "threads", "chunk-rows",
                                        "compress", "every", "keep-last", "keep-daily", "keep-weekly", "keep-monthly",
                                        "dry-run", "replace", "force", "batch-rows", "against", "metrics-file",
                                        "no-progress"};
  auto mine = std::find_if(allowed.begin(), allowed.end(), [&](const Allowed& a) { return cmd == a.command; });
  for (const auto& opt : all) {
    if (parser.given(opt) && std::find(mine->options.begin(), mine->options.end(), opt) == mine->options.end()) {
      return usage("--" + opt + " does not go with 'db-backup " + cmd + "'");
    }
  }
  // --tables a,b and --tables a --tables b mean the same.
  for (auto* list : {&c.tables, &c.exclude}) {
    std::vector<std::string> split;
    for (const auto& item : *list) {
      size_t start = 0;
      for (;;) {
        size_t comma = item.find(',', start);
        std::string part = item.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!part.empty()) split.push_back(part);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    *list = split;
  }
  if (c.threads < 1 || c.threads > 64) return usage("--threads must be from 1 to 64");
  if (c.batch_rows < 1 || c.batch_rows > 100000) return usage("--batch-rows must be from 1 to 100000");
  if (c.chunk_rows < 1000) return usage("--chunk-rows must be at least 1000");
  if (c.keep_last < 0 || c.keep_daily < 0 || c.keep_weekly < 0 || c.keep_monthly < 0) {
    return usage("--keep-* counts cannot be negative");
  }
  size_t want_args = 0;
  if (cmd == "dump") {
    if (c.from.empty()) return usage("dump needs --from URL");
    if (c.out.empty()) return usage("dump needs --out DIR");
    if (parser.given("every") && c.every.value.count() <= 0) return usage("--every must be longer than 0");
  } else if (cmd == "restore") {
    if (c.from.empty()) return usage("restore needs --from DIR");
    if (c.to.empty()) return usage("restore needs --to URL");
  } else if (cmd == "verify" || cmd == "list") {
    want_args = 1;
  } else if (cmd == "diff") {
    want_args = 2;
  } else if (cmd == "prune") {
    want_args = 1;
    if (!c.keeps_given()) return usage("prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly");
  }
  if (c.args.size() != want_args) {
    if (want_args == 0) return usage("unexpected argument '" + c.args.front() + "'");
    return usage(cmd + " takes " + (want_args == 1 ? std::string("one directory") : std::string("two directories")));
  }
  return {};
}

}  // namespace

envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& c,
                                                   std::ostream& out) {
  envkit::OptionParser parser({"db-backup", kUsage, kSummary, kAfter});
  parser.options().add_options()
      ("from", value(&c.from)->value_name("URL|DIR"), "dump: the database URL; restore: the backup directory")
      ("out", value(&c.out)->value_name("DIR"), "dump: write the backup as a new directory under DIR")
      ("to", value(&c.to)->value_name("URL"), "restore: the database to restore into")
      ("tables", value(&c.tables)->value_name("LIST"), "only these tables (comma-separated, repeatable)")
      ("exclude", value(&c.exclude)->value_name("LIST"), "not these tables (comma-separated, repeatable)")
      ("where", value(&c.where)->value_name("SQL"), "dump: only rows matching this condition")
      ("threads", value(&c.threads)->value_name("N"), "connections working in parallel (default 2)")
      ("chunk-rows", value(&c.chunk_rows)->value_name("N"),
       "split tables larger than N rows into primary-key ranges (default 500000)")
      ("compress", value(&c.compress)->value_name("ALG"), "none (default), gzip or zstd")
      ("every", value(&c.every)->value_name("DUR"), "run as a daemon: a backup at start, then at every tick of DUR on the clock's grid")
      ("keep-last", value(&c.keep_last)->value_name("N"), "keep the N newest backups")
      ("keep-daily", value(&c.keep_daily)->value_name("N"), "keep the newest backup of each of the last N days")
      ("keep-weekly", value(&c.keep_weekly)->value_name("N"), "keep the newest backup of each of the last N weeks")
      ("keep-monthly", value(&c.keep_monthly)->value_name("N"), "keep the newest backup of each of the last N months")
      ("dry-run", bool_switch(&c.dry_run), "prune: say what would be removed, remove nothing")
      ("replace", bool_switch(&c.replace), "restore: drop and recreate tables that already exist")
      ("force", bool_switch(&c.force), "restore: restore even a backup that fails verification")
      ("batch-rows", value(&c.batch_rows)->value_name("N"), "restore: rows per statement (default 5000)")
      ("against", value(&c.against)->value_name("URL"), "verify: also compare with the live database, row by row")
      ("metrics-file", value(&c.metrics_file)->value_name("FILE"),
       "write Prometheus text-file metrics (last success time, size) after each backup")
      ("no-progress", "no progress display even on a terminal");
  parser.hidden_options().add_options()
      ("dir", value(&c.args)->value_name("DIR"), "the backup directory of verify, list, prune; diff: two");
  parser.positional("dir", -1);
  parser.add_connection_options(c.connection, c.password_file);

  auto outcome = parser.parse_subcommand(argc, argv, {std::begin(kCommands), std::end(kCommands)}, c.command, out);
  if (!outcome || *outcome == envkit::ParseOutcome::exit_now) return outcome;
  c.progress = !parser.given("no-progress");
  if (auto st = check_config(c, parser); !st) return st.error();
  return outcome;
}

}  // namespace db_backup
