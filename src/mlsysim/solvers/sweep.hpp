// Parallel sweeps: the engine over the cartesian product of models x devices x phases x batch sizes
// x sequence lengths x contexts x precisions, on every core. One solve costs ~0.5 us, so millions
// of configurations take seconds. Invalid combinations (a phase the model lacks, a precision the
// device cannot run) are counted as skipped with their reason, not errors. A sequence length or
// context the step does not use (a decode step's --seq-len, a CNN's, a training step's context) is
// swept once: its other values would repeat that configuration, and are counted as repeats.
#pragma once

#include <string>
#include <vector>

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"
#include "mlsysim/solvers/engine.hpp"

namespace mlsysim {

struct SweepSpace {
  std::vector<const ModelSpec*> models;
  std::vector<const HardwareSpec*> hardware;
  std::vector<Phase> phases;
  std::vector<int> batches;
  std::vector<int> seq_lens;   // empty: the engine's default
  std::vector<int> contexts;   // empty: the engine's default
  std::vector<Precision> precisions;  // empty: the device's default
  Runtime runtime = Runtime::Graph;
  [[nodiscard]] size_t size() const;
};

struct SweepPoint {
  const ModelSpec* model;
  const HardwareSpec* hardware;
  Phase phase;
  int batch, seq_len, context;
  Precision precision;
  Seconds latency;
  Wall bottleneck;
  double mfu, throughput;
  Bytes memory;
  bool feasible;
};

struct SweepResult {
  std::vector<SweepPoint> points;   // in enumeration order
  size_t evaluated = 0, skipped = 0, repeats = 0;
  std::string first_skip_reason;
  double seconds = 0;
  unsigned threads = 1;
};

// threads == 0: all hardware threads; BadInput outside [0, kMaxWorkerThreads] (worker_threads.hpp).
SweepResult run_sweep(const SweepSpace& space, long long threads = 0);

}  // namespace mlsysim
