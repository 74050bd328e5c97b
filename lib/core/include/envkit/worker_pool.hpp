// A bounded set of worker threads over a list of items: db-backup's table and file jobs,
// proxy-check's targets. One implementation of "take the next item, stop on the first error",
// and one of "these n at once" (race-probe's workers).
#pragma once

#include <cstddef>
#include <functional>

#include <envkit/result.hpp>

namespace envkit {

/// Runs `work(worker, item)` for every item in [0, items) on up to `workers` threads, the
/// calling thread being worker 0 (so `workers` = 1 runs everything in order on this thread).
/// `worker` < min(workers, items) names the thread, for per-thread state such as a
/// connection. Items are handed out in order, each to the first free worker. When `work`
/// returns an error, no further item is started; items already started finish, and the
/// first error is returned. An exception escaping `work` is turned into an internal error.
Status for_each_parallel(size_t items, size_t workers,
                         const std::function<Status(size_t worker, size_t item)>& work);

/// Runs `work(i)` for every i in [0, n), each on a thread of its own and all at once (the
/// calling thread runs 0): for work that must overlap, such as a load generator's workers,
/// where for_each_parallel may hand two items to one thread in turn. Every call runs to its
/// end; the first error (by i) is returned, an escaping exception as an internal error.
Status run_concurrently(size_t n, const std::function<Status(size_t i)>& work);

}  // namespace envkit
