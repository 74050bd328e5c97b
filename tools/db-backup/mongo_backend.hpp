// db-backup's MongoDB backend: the pure helpers its restore uses, exposed for unit tests.
#pragma once

#include <string>

#include <envkit/result.hpp>

namespace db_backup {

/// The command that recreates a collection as it was dumped: {"create": NAME, ...options},
/// `options_json` being listCollections' options document (Extended JSON; "" or "{}": none).
/// Exit::data when the options are not a JSON object.
envkit::Result<std::string> mongo_create_command(const std::string& name, const std::string& options_json);

}  // namespace db_backup
