// Distributed training: the tutorial's Part 4 numbers, invariants, and every infeasible layout.
#include <gtest/gtest.h>

#include <cmath>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/collectives.hpp"
#include "mlsysim/physics/parallelism.hpp"
#include "mlsysim/physics/topology.hpp"
#include "mlsysim/physics/transformer.hpp"
#include "mlsysim/solvers/training.hpp"

using namespace mlsysim;

namespace {
const Catalog& cat() { return Catalog::builtin(); }
TrainingRequest req(int gpus, int tp, int pp, int B, int S) {
  TrainingRequest r;
  r.gpus = gpus;
  r.layout.tp = tp;
  r.layout.pp = pp;
  r.global_batch = B;
  r.seq_len = S;
  return r;
}
TrainingResult run70b(const TrainingRequest& r) {
  return train(cat().model("llama3-70b"), cat().hardware("h100"),
               FleetCatalog::builtin().standard_cluster("h100", r.gpus), r);
}
}  // namespace

TEST(Pipeline, TutorialBubbleTable) {
  // Slide 4.6: P=4/M=4 43%, 4/16 16%, 4/32 8.6%, 8/32 18%: (P-1)/(M+P-1).
  EXPECT_NEAR(pipeline_bubble_fraction(4, 4), 3.0 / 7, 1e-12);
  EXPECT_EQ(std::round(100 * pipeline_bubble_fraction(4, 4)), 43);
  EXPECT_EQ(std::round(100 * pipeline_bubble_fraction(4, 16)), 16);
  EXPECT_EQ(std::round(1000 * pipeline_bubble_fraction(4, 32)) / 10, 8.6);
  EXPECT_EQ(std::round(100 * pipeline_bubble_fraction(8, 32)), 18);
  // Interleaving (Narayanan et al. 2021): (p-1)/(v m + p-1); idle relative to compute (p-1)/(v m).
  EXPECT_NEAR(pipeline_bubble_fraction(4, 8, 2), 3.0 / 19, 1e-12);
  EXPECT_NEAR(pipeline_bubble_overhead(8, 4), 7.0 / 4, 1e-12);
  EXPECT_DOUBLE_EQ(pipeline_in_flight_micro_batches(4, 16), 4);
  EXPECT_DOUBLE_EQ(pipeline_in_flight_micro_batches(4, 2), 2);
  EXPECT_NEAR(pipeline_in_flight_micro_batches(4, 16, 2), 4 * (1 + 3.0 / 8), 1e-12);
}

TEST(Pipeline, TutorialAllReduceExamples) {
  // Slide 4.4: 1 GB over 8 GPUs at 900 GB/s -> 2 x 7/8 / 900 s = 1.94 ms.
  EXPECT_NEAR(in_ms(calc_ring_allreduce_time(gigabytes(1), 8, gigabytes_per_second(900), Seconds(0))),
              2.0 * 7 / 8 / 900 * 1e3, 1e-9);
  EXPECT_EQ(kChinchillaTokensPerParameter, 20.0);
  EXPECT_DOUBLE_EQ(chinchilla_tokens(70e9), 1.4e12);
}

TEST(Training, IdentitiesOfTheResult) {
  const auto r = run70b(req(64, 8, 1, 512, 4096));
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.layout.dp, 8);
  EXPECT_EQ(r.micro_batches, 64);
  EXPECT_NEAR(r.mfu, r.single_gpu_mfu * r.scaling_efficiency, 1e-9);
  EXPECT_DOUBLE_EQ(r.effective_mfu(), r.mfu);
  EXPECT_DOUBLE_EQ(r.communication_overhead(), r.communication_fraction);
  EXPECT_EQ(r.bubble_fraction, 0.0);  // pp = 1
  const Seconds parts = r.compute_time + r.tp_comm_time + r.cp_comm_time + r.ep_comm_time + r.pp_comm_time +
                        r.bubble_time + r.dp_exposed_time + r.optimizer_time + r.straggler_time +
                        r.contention_time;
  EXPECT_NEAR(parts.si(), r.step_time.si(), 1e-9);
  // Time to train: Chinchilla tokens / tokens per step x step time.
  EXPECT_NEAR(r.time_to_train.si(), 20 * r.parameters / (512.0 * 4096) * r.step_time.si(), 1e-6);
  EXPECT_NEAR(r.gpu_hours, 64 * r.time_to_train.si() / 3600, 1e-6);
  // Megatron distributed optimizer: 2 B weights + 4 B fp32 grads + 12 B states / dp per parameter.
  EXPECT_NEAR(r.memory.weights.si(), 2 * r.parameters_per_gpu, 1);
  EXPECT_NEAR(r.memory.gradients.si(), 4 * r.parameters_per_gpu, 1);
  EXPECT_NEAR(r.memory.optimizer_states.si(), 12 * r.parameters_per_gpu / 8, 1);
  // Scaling efficiency below 1 (communication is never free) and MFU in a physical range.
  EXPECT_LT(r.scaling_efficiency, 1.0);
  EXPECT_GT(r.mfu, 0.2);
  EXPECT_LT(r.mfu, 0.75);
}

TEST(Training, FullRecomputationHoldsOneLayersWorkingSetPerGpu) {
  // Llama-3 70B, TP8 x PP4, no sequence parallelism, full recomputation, micro-batch 1 x 4096:
  // each micro-batch in flight stashes only its layer inputs, 20 layers x 4096 x 8192 x 2 B; the
  // layer being recomputed holds its saved tensors once, however many micro-batches are in flight.
  auto activations = [](int global_batch) {
    TrainingRequest r = req(32, 8, 4, global_batch, 4096);
    r.layout.dp = 1;
    r.recompute = Recompute::Full;
    r.sequence_parallel = false;
    return run70b(r).memory.activations.si();
  };
  const double stash = 20.0 * 4096 * 8192 * 2;
  const double two_in_flight = activations(2), four_in_flight = activations(4);
  EXPECT_DOUBLE_EQ(four_in_flight - two_in_flight, 2 * stash);
  EXPECT_DOUBLE_EQ(activations(8), four_in_flight);  // 1F1B: at most p = 4 in flight
  EXPECT_LT(two_in_flight - 2 * stash, stash);        // working set + logits, counted once
}

TEST(Training, MoreGpusNeverRaisePerGpuMemory) {
  double prev = 1e30;
  for (int gpus : {16, 32, 64, 128, 256}) {
    const auto r = run70b(req(gpus, 8, 2, 512, 4096));
    EXPECT_LE(r.memory.total().si(), prev + 1) << gpus;
    prev = r.memory.total().si();
  }
}

TEST(Training, BubbleShrinksWithMicroBatches) {
  double prev = 1;
  for (int B : {32, 64, 128, 256}) {  // dp = 8 -> m = 4, 8, 16, 32
    const auto r = run70b(req(64, 2, 4, B, 2048));
    EXPECT_LT(r.bubble_fraction, prev) << B;
    prev = r.bubble_fraction;
  }
}

TEST(Training, ZeroStagesTradeMemoryForTraffic) {
  auto base = req(64, 8, 1, 512, 4096);
  double mem_prev = 1e30, comm_prev = -1;
  for (int z : {0, 1, 2, 3}) {
    base.zero_stage = z;
    const auto r = run70b(base);
    EXPECT_LT(r.memory.total().si(), mem_prev) << z;
    EXPECT_GE(r.dp_comm_time.si(), comm_prev * 0.99) << z;
    mem_prev = r.memory.total().si();
    comm_prev = r.dp_comm_time.si();
  }
}

TEST(Training, StragglersSlowTheStep) {
  auto q = req(64, 8, 1, 512, 4096);
  const auto a = run70b(q);
  q.straggler = {StragglerModel::Normal, 0.03};
  const auto b = run70b(q);
  EXPECT_GT(b.step_time, a.step_time);
  EXPECT_GT(b.straggler_factor, 1.0);
  q.straggler = {StragglerModel::Factor, 1.1};
  EXPECT_NEAR(run70b(q).straggler_time.si(), 0.1 * a.compute_time.si(), 1e-9);
}

TEST(Training, PublishedGpt3OnA100ClusterIsInRange) {
  // Narayanan et al. 2021 Table 1: GPT-3-class models on DGX A100 with TP 8 and PP reach
  // 138-163 TFLOP/s per GPU = 44-52% of the 312 TFLOP/s peak (with full recomputation).
  TrainingRequest q = req(1024, 8, 8, 1536, 2048);
  q.recompute = Recompute::Full;
  const auto r = train(cat().model("gpt3-175b"), cat().hardware("a100-80gb"),
                       FleetCatalog::builtin().cluster("a100-1k"), q);
  EXPECT_TRUE(r.feasible);
  EXPECT_GT(r.mfu, 0.30);
  EXPECT_LT(r.mfu, 0.60);
}

TEST(Training, InfeasibleLayoutsAreRejectedWithASuggestion) {
  auto expect_bad = [](TrainingRequest q, const char* needle) {
    try {
      run70b(q);
      FAIL() << needle;
    } catch (const BadInput& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto q = req(64, 8, 1, 512, 4096);
  q.layout.dp = 4;  // 8 x 1 x 4 = 32 != 64
  expect_bad(q, "use --dp 8");
  expect_bad(req(64, 16, 1, 512, 4096), "spans more than one node");
  expect_bad(req(64, 3, 1, 512, 4096), "not an integer");      // 3 does not divide 64
  expect_bad(req(60, 6, 1, 480, 4096), "tp must divide");      // 64 heads / 6
  expect_bad(req(64, 8, 1, 500, 4096), "not a multiple");      // 500 % 8
  auto c = req(64, 8, 1, 512, 4096);
  c.layout.cp = 3;
  expect_bad(c, "");  // 3 does not divide 64 GPUs / (tp) either -> rejected
  auto e = req(64, 8, 1, 512, 4096);
  e.layout.ep = 2;
  expect_bad(e, "dense");
}

TEST(Training, ModelThatCannotFitReturnsRemedies) {
  const auto r = run70b(req(8, 1, 1, 8, 4096));  // 70B unsharded on each GPU
  EXPECT_FALSE(r.feasible);
  EXPECT_GT(r.memory.total().si(), r.memory_capacity.si());
  EXPECT_FALSE(r.remedies.empty());
  EXPECT_NE(does_not_fit_message(r).find("remedies"), std::string::npos);
}

namespace mlsysim {
// Uneven pipeline split: Llama 3 405B's 126 layers on 16 stages are 7 | 8 x 14 | 7
// (Dubey et al. 2024 sec. 3.3.2); stage sums must equal the layer count.
TEST(PipelineStageSplit, UnevenFirstAndLastStages) {
  const StageSplit a = pipeline_stage_split(126, 16);
  EXPECT_EQ(a.first, 7);
  EXPECT_EQ(a.middle, 8);
  EXPECT_EQ(a.last, 7);
  EXPECT_EQ(a.first + 14 * a.middle + a.last, 126);
  const StageSplit b = pipeline_stage_split(80, 8);  // divisible: all equal
  EXPECT_EQ(b.first, 10);
  EXPECT_EQ(b.middle, 10);
  EXPECT_EQ(b.last, 10);
  const StageSplit c = pipeline_stage_split(10, 4);  // 3, 3 in the middle; 2, 2 at the ends
  EXPECT_EQ(c.first, 2);
  EXPECT_EQ(c.middle, 3);
  EXPECT_EQ(c.last, 2);
  const StageSplit d = pipeline_stage_split(9, 4);   // one big stage only: it sits in the middle
  EXPECT_EQ(d.first, 2);
  EXPECT_EQ(d.middle, 3);
  EXPECT_EQ(d.last, 2);
  EXPECT_THROW(pipeline_stage_split(4, 8), BadInput);
}
}  // namespace mlsysim

// Scaling efficiency is what parallelism costs (tutorial slide 4.11: communication, bubbles,
// stragglers): recomputation, which one GPU pays as well, stays in the single-GPU MFU. Data
// parallelism inside one NVLink node with little exposed communication scales almost ideally.
TEST(Training, RecomputationIsNotAScalingLoss) {
  TrainingRequest r = req(8, 1, 1, 64, 8192);
  r.zero_stage = 3;
  r.recompute = Recompute::Full;
  const auto run = [&] {
    return train(cat().model("llama3-8b"), cat().hardware("h100"),
                 FleetCatalog::builtin().standard_cluster("h100", 8), r);
  };
  const TrainingResult full = run();
  r.recompute = Recompute::None;
  const TrainingResult none = run();
  // The exposed communication and the optimizer step are the only parallel costs here.
  EXPECT_NEAR(full.scaling_efficiency, 1.0 - full.communication_fraction, 0.01);
  EXPECT_GT(full.scaling_efficiency, 0.95);
  EXPECT_LT(full.single_gpu_mfu, none.single_gpu_mfu);  // recomputing costs MFU on one GPU too
}

// Pipeline sends under tensor parallelism (Narayanan et al. 2021 §4.1, scatter/gather): each of the
// t ranks of a stage sends 1/t of the boundary activation (micro-batch x seq x hidden x 2 B) to its
// peer on the next stage, forward and backward; without sequence parallelism the receiving stage
// all-gathers the t pieces over NVLink. 175B-shaped GPT, TP 8 x PP 8 on 64 A100s, one stage per node.
TEST(Training, PipelineSendsAreScatteredOverTheTensorParallelRanks) {
  TrainingRequest r = req(64, 8, 8, 64, 2048);
  r.attention = AttentionKernel::Materialized;
  const ModelSpec& gpt = cat().model("megatron-gpt-175b");
  const Cluster cluster = FleetCatalog::builtin().standard_cluster("a100-80gb", 64);
  const TrainingResult sp = train(gpt, cat().hardware("a100-80gb"), cluster, r);
  r.sequence_parallel = false;
  const TrainingResult no_sp = train(gpt, cat().hardware("a100-80gb"), cluster, r);
  ASSERT_EQ(sp.micro_batches, 64);

  const Bytes boundary(1.0 * 2048 * 12288 * 2);  // one sequence's hidden states, 16-bit
  const int g = cluster.gpus_per_node();
  const Seconds send = collective_time(CollectiveOp::PointToPoint, boundary / 8.0, place_group(8, 8, g), cluster).time;
  const Seconds gather = collective_time(CollectiveOp::AllGather, boundary, place_group(8, 1, g), cluster).time;
  // Two sends (activation forward, its gradient backward) per micro-batch and stage.
  EXPECT_NEAR(sp.pp_comm_time.si(), (send * (2.0 * 64)).si(), 1e-12);
  EXPECT_NEAR(no_sp.pp_comm_time.si(), ((send + gather) * (2.0 * 64)).si(), 1e-12);
  // The inter-node part is an eighth of the unsplit tensor's: sending it whole would cost more.
  const Seconds whole = collective_time(CollectiveOp::PointToPoint, boundary, place_group(8, 8, g), cluster).time;
  EXPECT_LT(send + gather, whole);
}

// Context-parallel ranks hold the same weights as their data-parallel peers (each sees other
// tokens), so the distributed optimizer shards over dp x cp and the gradients are reduced over it
// (Megatron-core's data-parallel group with context parallelism): Llama 3.1 8B on 8 GPUs as CP 2 x
// DP 4 keeps 12 B / 8 of optimizer state per parameter, the same as DP 8.
TEST(Training, ContextParallelRanksShardTheOptimizerWithDataParallel) {
  TrainingRequest r = req(8, 1, 1, 64, 8192);
  r.layout.cp = 2;
  const ModelSpec& m = cat().model("llama3.1-8b");
  const Cluster node = FleetCatalog::builtin().standard_cluster("h100", 8);
  const TrainingResult cp = train(m, cat().hardware("h100"), node, r);
  EXPECT_EQ(cp.layout.dp, 4);
  EXPECT_NEAR(cp.memory.optimizer_states.si(), 12.0 * cp.parameters_per_gpu / 8, 1);
  r.layout.cp = 1;
  const TrainingResult dp = train(m, cat().hardware("h100"), node, r);
  EXPECT_EQ(dp.layout.dp, 8);
  EXPECT_NEAR(cp.memory.optimizer_states.si(), dp.memory.optimizer_states.si(), 1);
  // The same gradients cross the same 8 ranks (ZeRO-1: reduce-scatter + all-gather).
  EXPECT_NEAR(cp.dp_comm_time.si(), dp.dp_comm_time.si(), 1e-12);
}

// Chunked TP-communication overlap (Wang et al. 2023; TransformerEngine userbuffers): tp chunks,
// each hidden under the GEMM of the previous one. By hand: 8 ms of collectives under 20 ms of GEMMs
// on 4 ranks leave one chunk, 2 ms; under 4 ms of GEMMs, 8 - 4 x 3/4 = 5 ms.
TEST(Parallelism, ChunkedTensorParallelOverlapLeavesAtLeastOneChunk) {
  EXPECT_NEAR(overlapped_tp_comm_exposed(milliseconds(8), milliseconds(20), 4).si(), 2e-3, 1e-15);
  EXPECT_NEAR(overlapped_tp_comm_exposed(milliseconds(8), milliseconds(4), 4).si(), 5e-3, 1e-15);
  EXPECT_NEAR(overlapped_tp_comm_exposed(milliseconds(8), milliseconds(20), 1).si(), 8e-3, 1e-15);
  EXPECT_NEAR(overlapped_pipeline_sends_exposed(milliseconds(3), 64).si(), 3e-3, 1e-15);
}

// The overlap flags only hide communication: the step never gets longer, the exposed parts stay
// between their floors (one TP chunk, one micro-batch's sends) and the totals, and compute is untouched.
TEST(Training, OverlappedCommunicationOnlyHides) {
  TrainingRequest r = req(128, 4, 8, 256, 2048);
  r.layout.vpp = 12;
  r.recompute = Recompute::None;
  const ModelSpec& gpt = cat().model("megatron-gpt-175b");
  const Cluster cluster = FleetCatalog::builtin().standard_cluster("h100", 128);
  const TrainingResult plain = train(gpt, cat().hardware("h100"), cluster, r);
  r.tp_comm_overlap = r.pp_comm_overlap = true;
  const TrainingResult hidden = train(gpt, cat().hardware("h100"), cluster, r);
  EXPECT_DOUBLE_EQ(hidden.compute_time.si(), plain.compute_time.si());
  EXPECT_DOUBLE_EQ(hidden.tp_comm_total.si(), plain.tp_comm_time.si());
  EXPECT_DOUBLE_EQ(hidden.pp_comm_total.si(), plain.pp_comm_time.si());
  EXPECT_LT(hidden.step_time.si(), plain.step_time.si());
  EXPECT_GE(hidden.tp_comm_time.si(), hidden.tp_comm_total.si() / 4 - 1e-15);
  EXPECT_LE(hidden.tp_comm_time.si(), hidden.tp_comm_total.si());
  EXPECT_NEAR(hidden.pp_comm_time.si(), hidden.pp_comm_total.si() / hidden.micro_batches, 1e-15);
  const Seconds parts = hidden.compute_time + hidden.tp_comm_time + hidden.cp_comm_time + hidden.ep_comm_time +
                        hidden.pp_comm_time + hidden.bubble_time + hidden.dp_exposed_time +
                        hidden.optimizer_time + hidden.straggler_time + hidden.contention_time;
  EXPECT_NEAR(parts.si(), hidden.step_time.si(), 1e-9);
}

// Hidden communication is not free: its collectives hold 16 SMs (NCCL channels, one thread block
// each) while they run, so the compute beside them loses 16/132 of an H100 for that long. Exposed
// communication slows nothing, and a device whose collectives run on engines of their own (a TPU's
// ICI) pays nothing.
TEST(Training, HiddenCommunicationSlowsTheComputeBesideIt) {
  TrainingRequest r = req(128, 4, 8, 256, 2048);
  r.layout.vpp = 12;
  r.recompute = Recompute::None;
  r.tp_comm_overlap = r.pp_comm_overlap = true;
  const ModelSpec& gpt = cat().model("megatron-gpt-175b");
  const HardwareSpec& h100 = cat().hardware("h100");
  const TrainingResult t = train(gpt, h100, FleetCatalog::builtin().standard_cluster("h100", 128), r);
  const Seconds hidden = (t.tp_comm_total - t.tp_comm_time) + (t.pp_comm_total - t.pp_comm_time) +
                         (t.dp_comm_time - t.dp_exposed_time);
  ASSERT_GT(hidden.si(), 0);
  EXPECT_NEAR(t.hidden_comm_time.si(), hidden.si(), 1e-12);
  ASSERT_EQ(h100.compute_units, 132);
  EXPECT_NEAR(t.contention_time.si(), hidden.si() * 16.0 / 132.0, 1e-12);
  // Nothing hidden (no overlap at all), nothing charged.
  TrainingRequest bare = r;
  bare.tp_comm_overlap = bare.pp_comm_overlap = bare.overlap = false;
  const TrainingResult exposed = train(gpt, h100, FleetCatalog::builtin().standard_cluster("h100", 128), bare);
  EXPECT_EQ(exposed.contention_time.si(), 0.0);
  EXPECT_EQ(collective_compute_share(cat().hardware("tpu-v5p")), 0.0);
  EXPECT_NEAR(collective_compute_share(cat().hardware("a100-80gb")), 16.0 / 108.0, 1e-15);
}

// The pipeline stage the model times and sizes is the busiest one. DeepSeek-V3's first 3 of 61
// layers are dense: at pp 32 (2 layers per stage) the first stage's two dense layers are light and
// a later stage's two MoE layers heavy. Each GPU holds at least the average share of the
// parameters, total / (tp x pp), and more expert parallelism never adds any.
TEST(Training, TheBusiestStageOfAModelWithDenseFirstLayersHoldsItsMoeLayers) {
  const ModelSpec& ds = cat().model("deepseek-v3");
  const double total = ds.published_params.value_or(0);
  ASSERT_GT(total, 6e11);
  for (int pp : {2, 4, 8, 16, 32, 61}) {
    TrainingRequest r = req(8 * pp, 8, pp, 8 * pp, 4096);
    r.micro_batch = 1;
    const TrainingResult res = train(ds, cat().hardware("h100"),
                                     FleetCatalog::builtin().standard_cluster("h100", r.gpus), r);
    EXPECT_GE(res.parameters_per_gpu * 8 * pp, 0.95 * total) << "pp " << pp;
    TrainingRequest wider = r;
    wider.gpus *= 8;
    wider.global_batch *= 8;
    wider.layout.ep = 8;
    const TrainingResult ep = train(ds, cat().hardware("h100"),
                                    FleetCatalog::builtin().standard_cluster("h100", wider.gpus), wider);
    EXPECT_LE(ep.parameters_per_gpu, res.parameters_per_gpu) << "pp " << pp;
  }
}

// Megatron-LM's interleaved schedule splits each stage's layers into vpp equal chunks: a vpp that
// does not divide them is refused with the ones that do, and the layout search never proposes one.
TEST(Training, InterleavingNeedsChunksOfEqualDepth) {
  EXPECT_TRUE(interleaving_splits_evenly(80, 4, 5));
  EXPECT_FALSE(interleaving_splits_evenly(80, 4, 3));   // 20 layers in 3 chunks
  EXPECT_FALSE(interleaving_splits_evenly(61, 16, 2));  // 61 layers do not split over 16 stages
  // With the embedding and the loss as a layer each, 126 + 2 layers fill 8 stages of 8 chunks of 2
  // (MLPerf Training's Llama 3.1 405B), and the uneven split gives the first and the last stage the
  // 15 layers that leaves them; 128 does not fill 8 x 3.
  EXPECT_TRUE(interleaving_splits_evenly(126, 8, 8));
  EXPECT_FALSE(interleaving_splits_evenly(126, 8, 3));
  EXPECT_FALSE(interleaving_splits_evenly(126, 4, 5));  // 128 does not fill 4 x 5 either
  const StageSplit s = pipeline_stage_split(126, 8);
  EXPECT_EQ(s.first, 128 / 8 - 1);
  EXPECT_EQ(s.last, 128 / 8 - 1);
  EXPECT_EQ(s.middle, 128 / 8);
  TrainingRequest r = req(32, 8, 4, 32, 4096);
  r.layout.vpp = 3;
  try {
    run70b(r);
    FAIL() << "vpp 3 on 20-layer stages accepted";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("valid vpp at this pp: 2, 4, 5, 10, 20"), std::string::npos) << e.what();
  }
  r.layout.vpp = 5;
  EXPECT_NO_THROW(run70b(r));
}

// Training computes in floating point: no integer formats, and no narrow format the device cannot
// compute in (weight-only quantization is an inference technique).
TEST(Training, PrecisionsTrainingCannotRunAreRefused) {
  const auto attempt = [](const char* device, Precision p) {
    TrainingRequest r = req(8, 1, 1, 8, 2048);
    r.precision = p;
    return train(cat().model("llama3-8b"), cat().hardware(device),
                 FleetCatalog::builtin().standard_cluster(device, 8), r);
  };
  EXPECT_THROW(attempt("h100", Precision::FP4), BadInput);
  EXPECT_THROW(attempt("h100", Precision::INT8), BadInput);
  EXPECT_THROW(attempt("a100-80gb", Precision::FP8), BadInput);
  EXPECT_THROW(attempt("a100-80gb", Precision::INT4), BadInput);
  // Where the device has the format, the narrower math is faster.
  EXPECT_LT(attempt("h100", Precision::FP8).step_time.si(), attempt("h100", Precision::BF16).step_time.si());
}

// Without --seq-len the step uses the model's own length, within its window (gpt2: 1024 tokens).
TEST(Training, DefaultSequenceLengthFitsTheModelsWindow) {
  TrainingRequest r = req(8, 1, 1, 8, 0);
  r.seq_len.reset();
  const TrainingResult res = train(cat().model("gpt2"), cat().hardware("h100"),
                                   FleetCatalog::builtin().standard_cluster("h100", 8), r);
  EXPECT_EQ(res.seq_len, cat().model("gpt2").tf.max_seq);
}


// Block recomputation (Megatron's --recompute-method block --recompute-num-layers N): N of a stage's
// layers recompute in full. 0 layers is no recomputation and all of them full recomputation, exactly;
// in between, compute time is linear in N (each recomputed layer repeats one layer's forward) and
// the activation stash shrinks with every layer recomputed.
TEST(Training, BlockRecomputationInterpolatesBetweenNoneAndFull) {
  const auto step = [](std::optional<int> layers, Recompute recompute) {
    TrainingRequest r = req(16, 8, 2, 64, 4096);
    r.recompute = recompute;
    r.recompute_layers = layers;
    return run70b(r);
  };
  const TrainingResult none = step(std::nullopt, Recompute::None), full = step(std::nullopt, Recompute::Full);
  const TrainingResult zero = step(0, Recompute::Full), all = step(40, Recompute::Full);  // 80 layers / PP 2
  EXPECT_DOUBLE_EQ(zero.step_time.si(), none.step_time.si());
  EXPECT_DOUBLE_EQ(zero.memory.total().si(), none.memory.total().si());
  EXPECT_DOUBLE_EQ(all.step_time.si(), full.step_time.si());
  EXPECT_DOUBLE_EQ(all.memory.total().si(), full.memory.total().si());
  double previous_activations = none.memory.activations.si();
  for (int n : {10, 20, 30}) {
    const TrainingResult part = step(n, Recompute::Full);
    EXPECT_EQ(part.recompute_layers, n);
    EXPECT_NEAR(part.compute_time.si(),
                none.compute_time.si() + n / 40.0 * (full.compute_time.si() - none.compute_time.si()),
                1e-9 * full.compute_time.si()) << n;
    EXPECT_LT(part.memory.activations.si(), previous_activations) << n;
    previous_activations = part.memory.activations.si();
  }
  EXPECT_THROW(step(10, Recompute::None), BadInput);  // needs --recompute full
  EXPECT_THROW(step(41, Recompute::Full), BadInput);  // more than the stage's 40 layers
  EXPECT_THROW(step(-1, Recompute::Full), BadInput);
}

// Hybrid sharding (--shard-group): ZeRO-3 inside groups of 8 ranks (one DGX node) of 32, replicated
// across the 4 groups. Each GPU holds 1/8 of the optimizer states instead of 1/32, and its step adds
// an all-reduce of its 1/8 gradient shard across the 4 replicas (members 8 ranks apart) to the
// ZeRO-3 traffic inside the group; a group of all ranks is plain ZeRO-3.
TEST(Training, HybridShardingShardsWithinGroupsAndAllReducesAcross) {
  TrainingRequest r = req(32, 1, 1, 32, 2048);
  r.zero_stage = 3;
  r.micro_batch = 1;
  const auto& model = cat().model("llama3-8b");
  const Cluster c = FleetCatalog::builtin().standard_cluster("h100", 32);
  const TrainingResult flat = train(model, cat().hardware("h100"), c, r);
  r.shard_group = 32;
  const TrainingResult same = train(model, cat().hardware("h100"), c, r);
  EXPECT_DOUBLE_EQ(same.step_time.si(), flat.step_time.si());
  EXPECT_DOUBLE_EQ(same.memory.total().si(), flat.memory.total().si());
  r.shard_group = 8;
  const TrainingResult hybrid = train(model, cat().hardware("h100"), c, r);
  EXPECT_EQ(hybrid.shard_group, 8);
  EXPECT_NEAR(hybrid.memory.optimizer_states.si() / flat.memory.optimizer_states.si(), 32.0 / 8.0, 1e-9);
  // By hand: ZeRO-3 over 8 ranks of one node (2 all-gathers + 1 reduce-scatter per micro-batch, one
  // micro-batch) plus the all-reduce of 1/8 of the fp32 gradients over 4 ranks, one per node.
  const double params = parameter_count(model);
  const Bytes grads(params * 4), weights(params * 2);
  const auto inner = place_group(8, 1, 8), across = place_group(4, 8, 8);
  const double expected = 2 * collective_time(CollectiveOp::AllGather, weights, inner, c).time.si() +
                          collective_time(CollectiveOp::ReduceScatter, grads, inner, c).time.si() +
                          collective_time(CollectiveOp::AllReduce, grads / 8.0, across, c).time.si();
  EXPECT_NEAR(hybrid.dp_comm_time.si(), expected, 1e-9 * expected);
  // Refusals: a group that does not divide the ranks, and no ZeRO to shard.
  r.shard_group = 12;
  EXPECT_THROW((void)train(model, cat().hardware("h100"), c, r), BadInput);
  r.shard_group = 8;
  r.zero_stage = 0;
  EXPECT_THROW((void)train(model, cat().hardware("h100"), c, r), BadInput);
}
