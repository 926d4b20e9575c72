// Reuse of activations through the last-level cache (GPU L2, AMD's Infinity Cache), by LRU stack
// distance (Mattson, Gecsei, Slutz & Traiger 1970, "Evaluation techniques for storage
// hierarchies", IBM Systems Journal 9(2)): a line hits in an LRU cache of C bytes iff fewer than C
// distinct bytes were touched since its last use.
//
// An operator streams a tensor of S bytes that was last touched D distinct bytes ago, while
// bringing N bytes into the cache that were not touched since (its writes, its weights, other
// inputs older than this one). All its streams advance together, so the line at fraction x of the
// tensor sits at stack distance S + D + x N (the rest of the tensor, re-read or not, counts once):
// the whole tensor hits when S + D + N <= C, none of it when S + D > C, and its first
// (C - S - D) / N in between. Once the cache runs out, each miss evicts the next line to be read
// (the least recently used), so the tail misses entirely: the classic LRU cliff.
#pragma once

#include <span>
#include <vector>

namespace mlsysim {

// Fraction of a `tensor`-byte stream served by an LRU cache of `cache` bytes (see above).
// 0 when there is no cache.
inline double lru_hit_fraction(double cache, double tensor, double distance, double new_bytes) {
  if (cache <= 0 || tensor <= 0) return 0;
  const double room = cache - tensor - distance;  // what is left once the line's distance is paid
  if (room < 0) return 0;
  if (new_bytes <= room) return 1;
  return room / new_bytes;
}

// The tensors a step touched, in the order of their last touch (the LRU stack), for stack
// distances. Only tensors with less than the cache's worth of bytes touched after them stay on
// the stack (the rest can no longer hit), so on a large batch it holds a few tensors and every
// query is short. Every tensor knows its place on the stack, so finding one costs nothing however
// much of the network a large cache holds (batch 1 on H100's 50 MB L2 holds nearly all of it).
class ReuseHistory {
 public:
  // `expected_tensors` reserves room for the tensors a step will add.
  ReuseHistory(double cache_bytes, size_t expected_tensors);
  // Empties the history for another step on a `cache_bytes` cache, keeping its buffers: a history
  // reused across solves allocates nothing once it has grown to the largest network.
  void reset(double cache_bytes, size_t expected_tensors);

  // A tensor written now (an output, or weights read for the first time); returns its id.
  // `candidate`: a layer's output that a later layer may read (not an intermediate copy).
  // Inline, like the short queries below: a CNN lowering calls them a few times per layer.
  int add(double bytes, bool candidate = true) {
    const int id = static_cast<int>(tensors_.size());
    tensors_.push_back({bytes, -1});
    if (candidate) candidates_.push_back(id);
    push_live(id, bytes);
    return id;
  }
  // Bytes touched once that nothing asks about later (weights read for the first time): they
  // push the older tensors down the stack like any tensor, without an id of their own.
  void add_unnamed(double bytes) { append_live({-1, bytes}); }
  // Touches tensor `id` again (it was read): it becomes the most recent. Inline for the usual
  // case, a layer reading what the layer before it just wrote.
  void touch(int id) {
    const long at = position(id);
    if (at >= 0 && static_cast<size_t>(at) + 1 == live_.size()) return;  // already the most recent
    move_to_top(id, at);
  }
  // Distinct bytes touched after `id`'s last touch; infinite when that reaches the cache size
  // (the tensor fell out: no part of it can hit) or `id` is -1.
  [[nodiscard]] double since(int id) const;
  // Bytes of tensor `id` (0 for -1).
  [[nodiscard]] double bytes(int id) const { return id < 0 ? 0 : tensors_[static_cast<size_t>(id)].bytes; }
  // Whether `a` was last touched before `b` (-1, never seen, counts as oldest).
  [[nodiscard]] bool older(int a, int b) const { return position(a) < position(b); }
  // The most recently written candidate of exactly `bytes` other than `except`; -1 when none.
  // Tensors that fell out of the cache still count: they are found, then miss.
  [[nodiscard]] int latest_of_size(double bytes, int except = -1) const;
  // The most recently written candidate; -1 when none.
  [[nodiscard]] int latest() const { return candidates_.empty() ? -1 : candidates_.back(); }

 private:
  struct Live {
    int id;        // -1: unnamed bytes, or (0 bytes) a hole left where a touched tensor was
    double bytes;
  };
  struct Tensor {
    double bytes;
    long slot;  // index in live_ while on the stack (in [head_, end)), else -1
  };
  // Index in live_, -1 when absent (never seen, or retired).
  [[nodiscard]] long position(int id) const { return id < 0 ? -1 : tensors_[static_cast<size_t>(id)].slot; }
  // Appends `id` as the most recent, then retires from the least recent end every tensor with the
  // cache's worth of bytes after it: it can no longer hit. The test for the least recent one is
  // inline (on a large cache it usually stays); retire() goes on from there.
  void push_live(int id, double bytes) {
    tensors_[static_cast<size_t>(id)].slot = static_cast<long>(live_.size());
    append_live({id, bytes});
  }
  void append_live(Live e) {
    live_.push_back(e);
    live_bytes_ += e.bytes;
    if (live_bytes_ - live_[head_].bytes >= cache_) retire();  // head_ < live_.size() after a push
  }
  void retire();
  void move_to_top(int id, long at);  // touch() of a tensor at `at` (-1: off the stack)

  double cache_ = 0;
  double live_bytes_ = 0;         // bytes of live_[head_, end)
  size_t head_ = 0;               // live_[0, head_) are retired
  std::vector<Live> live_;        // the stack: tensors that can still hit, least recent first
  std::vector<Tensor> tensors_;   // every tensor's bytes and place on the stack, by id
  std::vector<int> candidates_;   // layer outputs, in the order they were written
};

// One operator's streamed inputs against the history: the bytes it still reads from DRAM. Each
// input's N counts the operator's `new_bytes` (writes, first-touch weights) plus the other inputs
// last touched before it. Touches the inputs afterwards. Ids of -1 (never seen) miss entirely.
struct StreamedInput {
  int id = -1;
  double bytes = 0;
};
double dram_read_bytes(ReuseHistory& history, std::span<const StreamedInput> inputs, double new_bytes,
                       double cache);

}  // namespace mlsysim
