// The HTTP workloads' driver: every worker's operations over one keep-alive connection each,
// the connections shared out among as many threads as there are cores, each waiting on its
// share with epoll (docs/architecture.md, "many HTTP connections at once").
#pragma once

#include <chrono>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/http_message.hpp>
#include <envkit/result.hpp>

#include "race-probe/history.hpp"

namespace race_probe {

/// One worker's side of an HTTP workload: what it sends next and what an answer means.
class HttpWorker {
 public:
  virtual ~HttpWorker() = default;
  /// The worker's next operation and its request; false when it has no more. An open-loop
  /// operation comes with op.intended set (its due time); a closed-load one with 0.
  virtual bool next(Operation& op, envkit::HttpRequest& request) = 0;
  /// Reads the answer (or the transport error) into op.
  virtual void finish(Operation& op, const envkit::Result<envkit::HttpResponse>& response) = 0;
};

/// Sends each worker's operations in turn on its own connection until every worker has no
/// more, and appends each completed operation to done[worker]. An operation due later
/// (open loop) is sent at its due time; its latency counts from then, however late the
/// connection was free. A request gets `request_timeout` in all, io_timeout between bytes;
/// a connection that fails or is closed is made again for the next operation. A stop signal
/// sends nothing more and waits for the requests in flight. Error: only when no thread or
/// epoll instance could be made.
envkit::Status drive_http(std::vector<HttpWorker*> workers, const envkit::ConnectionOptions& connection,
                          std::chrono::milliseconds request_timeout, std::vector<std::vector<Operation>>& done);

}  // namespace race_probe
