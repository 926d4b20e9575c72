#include "mlsysim/physics/parallelism.hpp"

#include <algorithm>
#include <string>

#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {
void check_pipeline(int p, int m, int v) {
  if (p < 1) throw BadInput("pipeline stages must be >= 1, got " + std::to_string(p));
  if (m < 1) throw BadInput("micro-batches must be >= 1, got " + std::to_string(m));
  if (v < 1) throw BadInput("virtual stages (interleaving) must be >= 1, got " + std::to_string(v));
}
}  // namespace

double pipeline_bubble_fraction(int p, int m, int v) {
  check_pipeline(p, m, v);
  return static_cast<double>(p - 1) / (static_cast<double>(v) * m + p - 1);
}

double pipeline_bubble_overhead(int p, int m, int v) {
  check_pipeline(p, m, v);
  return static_cast<double>(p - 1) / (static_cast<double>(v) * m);
}

double pipeline_in_flight_micro_batches(int p, int m, int v) {
  check_pipeline(p, m, v);
  if (p == 1) return 1.0;
  const double base = std::min(p, m);
  return v > 1 ? base * (1.0 + static_cast<double>(p - 1) / (static_cast<double>(p) * v)) : base;
}

StageSplit pipeline_stage_split(int layers, int p) {
  if (p < 1) throw BadInput("pipeline stages must be >= 1, got " + std::to_string(p));
  if (layers < p)
    throw BadInput("pipeline stages (" + std::to_string(p) + ") exceed the layers (" + std::to_string(layers) +
                   "); use pp <= " + std::to_string(layers));
  StageSplit s;
  const int base = layers / p, big = layers % p;  // big stages hold base + 1
  if (p == 1) return {layers, layers, layers};
  const int small = p - big;
  // Small stages go to the last stage first (it runs the LM head and the loss), then the first.
  s.last = small >= 1 ? base : base + 1;
  s.first = small >= 2 ? base : base + 1;
  const int middle_big = big - (s.last > base ? 1 : 0) - (s.first > base ? 1 : 0);
  s.middle = p > 2 ? (middle_big > 0 ? base + 1 : base) : 0;
  return s;
}

ZeroSharding zero_sharding(int stage, int dp) {
  if (stage < 0 || stage > 3) throw BadInput("ZeRO stage must be 0, 1, 2 or 3; got " + std::to_string(stage));
  if (dp < 1) throw BadInput("dp must be >= 1");
  ZeroSharding z;
  if (stage >= 1) z.optimizer = dp;
  if (stage >= 2) z.gradients = dp;
  if (stage >= 3) z.weights = dp;
  return z;
}

int tp_collectives_per_layer(bool full_recompute) { return full_recompute ? 6 : 4; }

Seconds overlapped_tp_comm_exposed(Seconds comm, Seconds gemm_window, int tp) {
  if (tp <= 1 || comm.si() <= 0) return comm;
  const double chunks = tp;
  return max(comm / chunks, comm - gemm_window * ((chunks - 1) / chunks));
}

Seconds overlapped_pipeline_sends_exposed(Seconds sends_per_micro_batch, int micro_batches) {
  return micro_batches >= 1 ? sends_per_micro_batch : Seconds(0);
}

Bytes sequence_parallel_activation_savings(double tokens, int layers, int tp, double replicated_bytes) {
  if (tp <= 1) return Bytes(0);
  return Bytes(tokens * layers * replicated_bytes * (1.0 - 1.0 / tp));
}

Bytes context_parallel_bytes_per_layer(const TransformerSpec& shard, double tokens_per_rank, int cp,
                                       double activation_bytes) {
  if (cp <= 1) return Bytes(0);
  const double head_dim = shard.head_dim > 0 ? shard.head_dim
                                             : static_cast<double>(shard.hidden) / std::max(1, shard.heads);
  const double kv_block = tokens_per_rank * 2.0 * shard.kv_heads * head_dim * activation_bytes;
  return Bytes(3.0 * (cp - 1) * kv_block);
}

double chinchilla_tokens(double parameters) {
  if (!(parameters > 0)) throw BadInput("parameters must be > 0");
  return kChinchillaTokensPerParameter * parameters;
}

}  // namespace mlsysim
