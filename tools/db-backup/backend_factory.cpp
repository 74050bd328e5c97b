// make_backend(): the one table from URL scheme to backend. A new backend adds one line here.
#include "db-backup/backend.hpp"

namespace db_backup {

namespace {

using Maker = Result<std::unique_ptr<Backend>> (*)(const envkit::Url&, const BackendOptions&);

struct Registration {
  std::string_view scheme;
  Maker make;
};

// The Redis/Mongo engineer registers {"redis", make_redis_backend} and
// {"mongodb", make_mongo_backend} here, next to their files.
constexpr Registration kBackends[] = {
    {"mysql", make_mysql_backend},
    {"mariadb", make_mysql_backend},
    {"redis", make_redis_backend},
    {"mongodb", make_mongo_backend},
};

}  // namespace

Result<std::unique_ptr<Backend>> make_backend(const envkit::Url& url,
                                              const BackendOptions& options) {
  std::string known;
  for (const auto& r : kBackends) {
    if (r.scheme == url.scheme) return r.make(url, options);
    known += known.empty() ? "" : ", ";
    known += std::string(r.scheme) + "://";
  }
  return Error{Exit::usage,
               "no backend for '" + url.scheme + "://' URLs (db-backup knows " + known + ")"};
}

}  // namespace db_backup
