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
double lru_hit_fraction(double cache, double tensor, double distance, double new_bytes);

// The tensors a step touched, in the order of their last touch (the LRU stack), for stack
// distances. Only tensors with less than the cache's worth of bytes touched after them stay on
// the stack (the rest can no longer hit), so on a large batch it holds a few tensors and every
// query is short.
class ReuseHistory {
 public:
  // `expected_tensors` reserves room for the tensors a step will add.
  ReuseHistory(double cache_bytes, size_t expected_tensors);

  // A tensor written now (an output, or weights read for the first time); returns its id.
  // `candidate`: a layer's output that a later layer may read (not an intermediate copy).
  int add(double bytes, bool candidate = true);
  // Touches tensor `id` again (it was read): it becomes the most recent.
  void touch(int id);
  // Distinct bytes touched after `id`'s last touch; infinite when that reaches the cache size
  // (the tensor fell out: no part of it can hit) or `id` is -1.
  [[nodiscard]] double since(int id) const;
  // Bytes of tensor `id` (0 for -1).
  [[nodiscard]] double bytes(int id) const;
  // Whether `a` was last touched before `b` (-1, never seen, counts as oldest).
  [[nodiscard]] bool older(int a, int b) const;
  // The most recently written candidate of exactly `bytes` other than `except`; -1 when none.
  // Tensors that fell out of the cache still count: they are found, then miss.
  [[nodiscard]] int latest_of_size(double bytes, int except = -1) const;
  // The most recently written candidate; -1 when none.
  [[nodiscard]] int latest() const;

 private:
  struct Live {
    int id;
    double bytes;
  };
  [[nodiscard]] long position(int id) const;  // index in live_, -1 when absent
  void push_live(int id, double bytes);

  double cache_;
  double live_bytes_ = 0;         // bytes of live_[head_, end)
  size_t head_ = 0;               // live_[0, head_) are retired
  std::vector<Live> live_;        // the stack: tensors that can still hit, least recent first
  std::vector<double> sizes_;     // every tensor's bytes, by id
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
