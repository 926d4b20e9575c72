// Worker threads of the all-core solvers (sweep, layout search): how many to run, and running them
// so that neither a refused thread nor a throwing worker can abort the process.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "mlsysim/errors.hpp"

namespace mlsysim {

// More threads than this buys nothing on any machine the engine runs on and can exhaust the
// process's address space (each thread reserves its own stack).
constexpr long long kMaxWorkerThreads = 1024;

inline unsigned hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

// BadInput unless `requested` (the value of `flag`) is in [0, kMaxWorkerThreads]; 0 means all cores.
inline void check_worker_threads(long long requested, const char* flag = "--threads") {
  if (requested < 0 || requested > kMaxWorkerThreads)
    throw BadInput(fmt::format("{} must be in [1, {}] (0 or omitted: all {} cores), got {}", flag,
                               kMaxWorkerThreads, hardware_threads(), requested));
}

// `requested` threads (0: all hardware threads), never more than `work_items`.
inline unsigned worker_thread_count(long long requested, size_t work_items) {
  check_worker_threads(requested);
  const size_t wanted = requested == 0 ? hardware_threads() : static_cast<size_t>(requested);
  return static_cast<unsigned>(std::max<size_t>(1, std::min(wanted, work_items)));
}

// Runs worker(t) for every t in [0, threads), t = 0 on the calling thread. A thread the system
// refuses to start leaves its index to the calling thread; the first exception a worker throws is
// rethrown here once every thread has joined.
template <class Worker>
void run_workers(unsigned threads, Worker&& worker) {
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto guarded = [&](unsigned t) {
    try {
      worker(t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  unsigned started = 1;
  try {
    pool.reserve(threads);
    for (; started < threads; ++started) pool.emplace_back(guarded, started);
  } catch (const std::system_error&) {
    // Out of threads: the calling thread takes the indices that did not start.
  }
  guarded(0);
  for (unsigned t = started; t < threads; ++t) guarded(t);
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace mlsysim
