// for_each_parallel: an atomic cursor over the items, the first error kept under a mutex.
#include <envkit/worker_pool.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <envkit/exit_status.hpp>

namespace envkit {

Status for_each_parallel(size_t items, size_t workers,
                         const std::function<Status(size_t worker, size_t item)>& work) {
  std::atomic<size_t> next{0};
  std::atomic<bool> abort{false};
  std::mutex mu;
  Status first_error;
  auto record = [&](Status st) {
    std::lock_guard lock(mu);
    if (first_error) first_error = std::move(st);
    abort = true;
  };
  auto run = [&](size_t worker) {
    while (!abort) {
      size_t i = next.fetch_add(1);
      if (i >= items) return;
      Status st;
      try {
        st = work(worker, i);
      } catch (const std::exception& e) {
        st = fail(Failure::internal, std::string("internal error: ") + e.what());
      }
      if (!st) {
        record(std::move(st));
        return;
      }
    }
  };
  size_t n = std::max<size_t>(1, std::min(workers, items));
  std::vector<std::thread> threads;
  threads.reserve(n - 1);
  for (size_t w = 1; w < n; ++w) threads.emplace_back(run, w);
  run(0);
  for (auto& t : threads) t.join();
  return first_error;
}

Status run_concurrently(size_t n, const std::function<Status(size_t i)>& work) {
  std::vector<Status> results(n);
  auto run = [&](size_t i) {
    try {
      results[i] = work(i);
    } catch (const std::exception& e) {
      results[i] = fail(Failure::internal, std::string("internal error: ") + e.what());
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(n > 0 ? n - 1 : 0);
  for (size_t i = 1; i < n; ++i) threads.emplace_back(run, i);
  if (n > 0) run(0);
  for (auto& t : threads) t.join();
  for (auto& st : results) {
    if (!st) return st;
  }
  return {};
}

}  // namespace envkit
