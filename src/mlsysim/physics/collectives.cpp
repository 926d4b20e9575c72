#include "mlsysim/physics/collectives.hpp"

#include <cmath>
#include <string>

#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

void check(Bytes message, int ranks, LinkCost link, const char* what) {
  if (ranks < 1) throw BadInput(std::string(what) + ": ranks must be >= 1, got " + std::to_string(ranks));
  if (message.si() < 0 || !std::isfinite(message.si()))
    throw BadInput(std::string(what) + ": message size must be a finite number >= 0 bytes");
  if (!(link.bandwidth.si() > 0))
    throw BadInput(std::string(what) + ": link bandwidth must be > 0 B/s");
  if (link.latency.si() < 0) throw BadInput(std::string(what) + ": latency must be >= 0 s");
}

}  // namespace

Seconds ring_allreduce_time(Bytes message, int ranks, LinkCost link) {
  check(message, ranks, link, "ring all-reduce");
  if (ranks == 1) return Seconds(0);
  const double n = ranks;
  return link.latency * (2 * (n - 1)) + message * (2 * (n - 1) / n) / link.bandwidth;
}

// NCCL's double binary tree (Sanders, Speck & Traeff 2009): an interior rank receives from two
// children and forwards to its parent, then the reverse, so it moves 2x the message in each direction
// (NCCL's tuning model: tree algbw = busbw / 2); two ranks simply exchange the message once.
Seconds tree_allreduce_time(Bytes message, int ranks, LinkCost link) {
  check(message, ranks, link, "tree all-reduce");
  if (ranks == 1) return Seconds(0);
  const double traffic = ranks == 2 ? 1.0 : 2.0;
  return link.latency * (2 * std::ceil(std::log2(static_cast<double>(ranks)))) +
         message * traffic / link.bandwidth;
}

Seconds chain_allreduce_time(Bytes message, int ranks, LinkCost link) {
  check(message, ranks, link, "chain all-reduce");
  if (ranks == 1) return Seconds(0);
  const double traffic = ranks == 2 ? 1.0 : 2.0;
  return link.latency * (2.0 * (ranks - 1)) + message * traffic / link.bandwidth;
}

Seconds ring_reduce_scatter_time(Bytes message, int ranks, LinkCost link) {
  check(message, ranks, link, "reduce-scatter");
  if (ranks == 1) return Seconds(0);
  const double n = ranks;
  return link.latency * (n - 1) + message * ((n - 1) / n) / link.bandwidth;
}

Seconds ring_allgather_time(Bytes message, int ranks, LinkCost link) {
  check(message, ranks, link, "all-gather");
  return ring_reduce_scatter_time(message, ranks, link);  // same traffic pattern, reversed
}

Seconds all_to_all_time(Bytes message, int ranks, LinkCost link) {
  check(message, ranks, link, "all-to-all");
  if (ranks == 1) return Seconds(0);
  const double n = ranks;
  return link.latency * (n - 1) + message * ((n - 1) / n) / link.bandwidth;
}

Seconds point_to_point_time(Bytes message, LinkCost link) {
  check(message, 1, link, "point-to-point");
  return link.latency + message / link.bandwidth;
}

Seconds hierarchical_allreduce_time(Bytes message, int gpus_per_node, int nodes, LinkCost intra,
                                    LinkCost inter) {
  check(message, gpus_per_node, intra, "hierarchical all-reduce (intra-node)");
  check(message, nodes, inter, "hierarchical all-reduce (inter-node)");
  const Seconds local = ring_reduce_scatter_time(message, gpus_per_node, intra) +
                        ring_allgather_time(message, gpus_per_node, intra);
  return local + ring_allreduce_time(message / gpus_per_node, nodes, inter);
}

BytesPerSecond allreduce_bus_bandwidth(Bytes message, int ranks, Seconds time) {
  if (time.si() <= 0 || ranks < 2) return BytesPerSecond(0);
  const double n = ranks;
  return message / time * (2 * (n - 1) / n);
}

}  // namespace mlsysim
