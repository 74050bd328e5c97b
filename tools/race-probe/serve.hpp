// `race-probe serve`: the reference target. A task server persisting to a JSON file, a stock
// endpoint and a key-value endpoint, safe or (--unsafe) racy on purpose.
#pragma once

#include <memory>

#include <envkit/http_server.hpp>
#include <envkit/result.hpp>

#include "race-probe/config.hpp"

namespace race_probe {

/// The routes, apart from the server, so unit tests can call them directly:
///   POST /tasks            body: one JSON object, appended to the tasks file (201)
///   GET  /tasks            the tasks file: a JSON array
///   PUT  /stock/ITEM       body {"stock":N}: sets an item's stock (200)
///   POST /stock/ITEM/buy   takes one: 200 {"item","remaining"}, or 409 when sold out
///   GET  /stock            {"ITEM":remaining,...};  GET /stock/ITEM  {"item","stock"}
///   GET  /kv/KEY           {"value":V} or 404;  PUT /kv/KEY body {"value":V}
///   POST /kv/KEY/cas       body {"from":A,"to":B}: 200 when it held A, else 409
///   GET  /health           200
class ReferenceService {
 public:
  explicit ReferenceService(ServeConfig config);
  ~ReferenceService();
  envkit::HttpReply handle(const envkit::HttpServerRequest& request);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Serves until SIGINT/SIGTERM. Errors: the address (Exit::unavailable when in use), the
/// tasks file's directory.
envkit::Status serve(const ServeConfig& config);

/// What serve() resolves before listening: the URL and the tasks file's directory.
envkit::Status check_serve(const ServeConfig& config);

}  // namespace race_probe
