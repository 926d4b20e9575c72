#include "mlsysim/physics/cache_reuse.hpp"

#include <limits>

namespace mlsysim {

double lru_hit_fraction(double cache, double tensor, double distance, double new_bytes) {
  if (cache <= 0 || tensor <= 0) return 0;
  const double room = cache - tensor - distance;  // what is left once the line's distance is paid
  if (room < 0) return 0;
  if (new_bytes <= room) return 1;
  return room / new_bytes;
}

ReuseHistory::ReuseHistory(double cache_bytes, size_t expected_tensors) : cache_(cache_bytes) {
  sizes_.reserve(expected_tensors);
  candidates_.reserve(expected_tensors);
  live_.reserve(64);
}

int ReuseHistory::add(double bytes, bool candidate) {
  const int id = static_cast<int>(sizes_.size());
  sizes_.push_back(bytes);
  if (candidate) candidates_.push_back(id);
  push_live(id, bytes);
  return id;
}

void ReuseHistory::touch(int id) {
  const long at = position(id);
  if (at < 0) {
    if (id >= 0) push_live(id, sizes_[static_cast<size_t>(id)]);
    return;
  }
  if (static_cast<size_t>(at) + 1 == live_.size()) return;  // already the most recent
  const Live e = live_[static_cast<size_t>(at)];
  live_.erase(live_.begin() + at);
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

double ReuseHistory::bytes(int id) const { return id < 0 ? 0 : sizes_[static_cast<size_t>(id)]; }

bool ReuseHistory::older(int a, int b) const { return position(a) < position(b); }

int ReuseHistory::latest_of_size(double bytes, int except) const {
  for (auto it = candidates_.rbegin(); it != candidates_.rend(); ++it)
    if (*it != except && sizes_[static_cast<size_t>(*it)] == bytes) return *it;
  return -1;
}

int ReuseHistory::latest() const { return candidates_.empty() ? -1 : candidates_.back(); }

long ReuseHistory::position(int id) const {
  for (size_t i = live_.size(); i-- > head_;)
    if (live_[i].id == id) return static_cast<long>(i);
  return -1;
}

// Appends `id` as the most recent, then retires from the least recent end every tensor with the
// cache's worth of bytes after it: it can no longer hit. Retired entries stay in front of head_
// until they are a quarter of the vector, then go in one move.
void ReuseHistory::push_live(int id, double bytes) {
  live_.push_back({id, bytes});
  live_bytes_ += bytes;
  while (head_ < live_.size() && live_bytes_ - live_[head_].bytes >= cache_) live_bytes_ -= live_[head_++].bytes;
  if (head_ > 16 && 4 * head_ > live_.size()) {
    live_.erase(live_.begin(), live_.begin() + static_cast<long>(head_));
    head_ = 0;
  }
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
