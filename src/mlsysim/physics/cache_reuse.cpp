#include "mlsysim/physics/cache_reuse.hpp"

#include <limits>

namespace mlsysim {

ReuseHistory::ReuseHistory(double cache_bytes, size_t expected_tensors) { reset(cache_bytes, expected_tensors); }

void ReuseHistory::reset(double cache_bytes, size_t expected_tensors) {
  cache_ = cache_bytes;
  live_bytes_ = 0;
  head_ = 0;
  live_.clear();
  tensors_.clear();
  candidates_.clear();
  tensors_.reserve(expected_tensors);
  candidates_.reserve(expected_tensors);
  live_.reserve(64);
}

void ReuseHistory::move_to_top(int id, long at) {
  if (at < 0) {
    if (id >= 0) push_live(id, tensors_[static_cast<size_t>(id)].bytes);
    return;
  }
  // Its old place becomes a hole (no tensor, 0 bytes) instead of closing up: nothing behind it
  // moves. A hole adds exactly nothing to since()'s sums, and push_live() retires it exactly
  // when it would have retired the tensor after it.
  Live& old = live_[static_cast<size_t>(at)];
  const Live e = old;
  old = {-1, 0.0};
  live_bytes_ -= e.bytes;
  push_live(e.id, e.bytes);
}

double ReuseHistory::since(int id) const {
  const long at = position(id);
  if (at < 0) return std::numeric_limits<double>::infinity();
  double after = 0;
  for (size_t i = static_cast<size_t>(at) + 1; i < live_.size(); ++i) after += live_[i].bytes;
  return after;
}

int ReuseHistory::latest_of_size(double bytes, int except) const {
  for (auto it = candidates_.rbegin(); it != candidates_.rend(); ++it)
    if (*it != except && tensors_[static_cast<size_t>(*it)].bytes == bytes) return *it;
  return -1;
}

// Retired entries stay in front of head_ until they are a quarter of the vector, then go in one
// move.
void ReuseHistory::retire() {
  // The running sum and the head in locals: the slot stores below could alias the members, and
  // a large batch retires several tensors per push.
  double bytes = live_bytes_;
  size_t head = head_;
  while (head < live_.size() && bytes - live_[head].bytes >= cache_) {
    const Live& retired = live_[head++];
    bytes -= retired.bytes;
    if (retired.id >= 0) tensors_[static_cast<size_t>(retired.id)].slot = -1;
  }
  live_bytes_ = bytes;
  head_ = head;
  if (head_ <= 16 || 4 * head_ <= live_.size()) return;
  live_.erase(live_.begin(), live_.begin() + static_cast<long>(head_));
  head_ = 0;
  for (size_t i = 0; i < live_.size(); ++i)
    if (live_[i].id >= 0) tensors_[static_cast<size_t>(live_[i].id)].slot = static_cast<long>(i);
}

double dram_read_bytes(ReuseHistory& history, std::span<const StreamedInput> inputs, double new_bytes,
                       double cache) {
  double dram = 0;
  for (const StreamedInput& in : inputs) {
    if (in.id < 0 || in.bytes >= cache) {  // never seen, or larger than the cache: all misses
      dram += in.bytes;
      continue;
    }
    double incoming = new_bytes;
    for (const StreamedInput& other : inputs)
      if (&other != &in && history.older(other.id, in.id)) incoming += other.bytes;
    const double hit = lru_hit_fraction(cache, in.bytes, history.since(in.id), incoming);
    dram += (1 - hit) * in.bytes;
  }
  for (const StreamedInput& in : inputs) history.touch(in.id);
  return dram;
}

}  // namespace mlsysim
