// Worker threads of the all-core solvers (sweep, layout search): how many to run, and running them
// so that neither a refused thread nor a throwing worker can abort the process.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
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

// Pools nest (validate runs its points on a pool, and some points search on threads of their own):
// a solver asked for "all cores" from inside a worker gets its own thread plus the cores no worker
// holds at the moment (more once the outer pool runs out of work), not a second full set.
inline thread_local int worker_depth = 0;  // run_workers workers this thread is inside
inline std::atomic<int> busy_workers{0};   // workers running now, in every pool
inline unsigned available_threads() {
  if (worker_depth == 0) return hardware_threads();
  const int idle = static_cast<int>(hardware_threads()) - busy_workers.load(std::memory_order_relaxed);
  return static_cast<unsigned>(std::max(1, idle + 1));
}

// BadInput unless `requested` (the value of `flag`) is in [0, kMaxWorkerThreads]; 0 means all cores.
inline void check_worker_threads(long long requested, const char* flag = "--threads") {
  if (requested < 0 || requested > kMaxWorkerThreads)
    throw BadInput(fmt::format("{} must be in [1, {}] (0 or omitted: all {} cores), got {}", flag,
                               kMaxWorkerThreads, hardware_threads(), requested));
}

// `requested` threads (0: all hardware threads, or inside a worker its own thread plus the idle ones:
// available_threads), never more than `work_items`.
inline unsigned worker_thread_count(long long requested, size_t work_items) {
  check_worker_threads(requested);
  const size_t wanted = requested == 0 ? available_threads() : static_cast<size_t>(requested);
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
    ++worker_depth;
    busy_workers.fetch_add(1, std::memory_order_relaxed);
    try {
      worker(t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
    busy_workers.fetch_sub(1, std::memory_order_relaxed);
    --worker_depth;
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
