// ServingModel and ContinuousBatchingModel: the tutorial's Part 2 examples asserted against the
// physics (hand-computed from the formulas and the catalog's architecture numbers), published
// PagedAttention figures, invariants, and every bad input.
#include <gtest/gtest.h>

#include <limits>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "input_errors.hpp"
#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/collectives.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/serving.hpp"
#include "mlsysim/physics/sharding.hpp"
#include "mlsysim/physics/topology.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/solvers/serving.hpp"

using namespace mlsysim;

namespace {
const ModelSpec& model(const char* id) { return Catalog::builtin().model(id); }
const HardwareSpec& hw(const char* id) { return Catalog::builtin().hardware(id); }
ServingRequest req(int seq, int batch = 1, int out = 128) {
  ServingRequest r;
  r.seq_len = seq;
  r.batch = batch;
  r.output_len = out;
  return r;
}
}  // namespace

// Tensor parallelism splits each width as ceil(width / tp); a width near 2^31 used to wrap
// negative there (a negative TTFT that "fit").
TEST(ServingPart2, TensorParallelSplitsOfHugeWidthsStayPositive) {
  ModelSpec wide = model("mixtral-8x7b");
  wide.tf.moe_ffn = 2147483647;
  wide.tf.ffn = 2147483647;
  ShardPlan plan;
  plan.tp = 2;
  const ModelSpec shard = shard_transformer(wide, plan);
  EXPECT_EQ(shard.tf.moe_ffn, 1073741824);  // ceil((2^31 - 1) / 2)
  EXPECT_EQ(shard.tf.ffn, 1073741824);
}

TEST(ServingPart2, PrefillIsComputeBoundDecodeIsMemoryBound) {
  const ServingResult s = serve(model("llama3-8b"), hw("h100"), req(4096));
  EXPECT_TRUE(s.feasible);
  EXPECT_EQ(s.tp, 1);
  EXPECT_EQ(s.prefill_bottleneck, Wall::Compute);
  EXPECT_EQ(s.decode_bottleneck, Wall::Memory);
  EXPECT_GT(s.prefill_intensity, s.ridge_point);
  EXPECT_LT(s.decode_intensity.si(), s.ridge_point.si() / 10);
  // "Why does the first token take 50 ms but each next token only 5 ms?": TTFT >> ITL.
  EXPECT_GT(s.ttft.si(), 10 * s.itl.si());
  // ITL is at least the napkin weight-streaming time 16.06 GB / 3.35 TB/s = 4.79 ms.
  EXPECT_GT(s.itl.si(), 8.03e9 * 2 / 3.35e12);
}

TEST(ServingPart2, TtftAndItlAreEngineSolves) {
  // Each is one engine iteration: the engine's forward pass plus the serving runtime's host work
  // around it, 20 framework calls at the H100's calibrated eager dispatch (25.03 us): 0.5006 ms.
  const ModelSpec& m = model("llama3-8b");
  const double host = 20 * 25.03e-6;
  const ServingResult s = serve(m, hw("h100"), req(2048, 4, 256));
  SolveRequest p;
  p.phase = Phase::Prefill, p.batch = 4, p.seq_len = 2048, p.context = 0;
  EXPECT_NEAR(s.ttft.si(), solve(m, hw("h100"), p).latency.si() + host, 1e-12);
  SolveRequest d;
  // Steps k = 1..255 attend over 2048 + k - 1 cached tokens: mean 2048 + 127.
  d.phase = Phase::Decode, d.batch = 4, d.context = 2048 + 127;
  EXPECT_NEAR(s.itl.si(), solve(m, hw("h100"), d).latency.si() + host, 1e-12);
  // An engine that overlaps its scheduling with the GPU: --step-host-us 0 leaves the forward pass.
  ServingRequest overlapped = req(2048, 4, 256);
  overlapped.overrides.step_host = Seconds(0);
  EXPECT_DOUBLE_EQ(serve(m, hw("h100"), overlapped).itl.si(), solve(m, hw("h100"), d).latency.si());
  EXPECT_NEAR(s.e2e_latency.si(), s.ttft.si() + 255 * s.itl.si(), 1e-12);
  EXPECT_NEAR(s.tokens_per_s, 4 / s.itl.si(), 1e-9);
}

TEST(ServingPart2, KvCacheIsGqaAware) {
  // Llama-3 8B: 32 layers, 8 KV heads (GQA), head dim 128, fp16: 2*32*8*128*2 = 131072 B/token.
  const ServingResult s = serve(model("llama3-8b"), hw("h100"), req(4096, 1, 128));
  EXPECT_DOUBLE_EQ(s.kv_cache_per_request.si(), 131072.0 * (4096 + 128));
  // 4K context = 0.537 GB, a quarter of the slide's MHA figure 2*32*32*128*4096*2 = 2.15 GB.
  const double kv4k = 131072.0 * 4096;
  EXPECT_NEAR(kv4k / 1e9, 0.537, 0.001);
  EXPECT_DOUBLE_EQ(2.0 * 32 * 32 * 128 * 4096 * 2 / kv4k, 4.0);
  // An fp8 KV cache halves it.
  ServingRequest r = req(4096, 1, 128);
  r.kv_precision = Precision::FP8;
  EXPECT_DOUBLE_EQ(serve(model("llama3-8b"), hw("h100"), r).kv_cache_per_request.si(),
                   65536.0 * (4096 + 128));
}

TEST(ServingPart2, MemoryFootprintAddsKvOfEveryRequest) {
  const ServingResult a = serve(model("llama3-8b"), hw("h100"), req(4096, 1));
  const ServingResult b = serve(model("llama3-8b"), hw("h100"), req(4096, 8));
  EXPECT_NEAR((b.kv_cache_per_gpu - a.kv_cache_per_gpu).si(), 7 * a.kv_cache_per_request.si(), 1.0);
  // Against the memory a process can allocate: the H100's 79.19 GiB, not the label's 80e9 bytes.
  EXPECT_NEAR(a.memory_utilization, a.memory_footprint.si() / (79.19 * 1024 * 1024 * 1024), 1e-12);
}

TEST(ServingPart2, LargeBatchDecodeTurnsComputeBoundAtShortContext) {
  // Short context: the weights dominate the bytes, so enough requests make decode compute-bound.
  const ServingResult s = serve(model("llama3-8b"), hw("h100"), req(64, 1, 2));
  ASSERT_GT(s.decode_compute_bound_batch, 1);
  const ServingResult big = serve(model("llama3-8b"), hw("h100"), req(64, s.decode_compute_bound_batch, 2));
  EXPECT_EQ(big.decode_bottleneck, Wall::Compute);
  const ServingResult small = serve(model("llama3-8b"), hw("h100"), req(64, s.decode_compute_bound_batch / 2, 2));
  EXPECT_EQ(small.decode_bottleneck, Wall::Memory);
}

TEST(ServingPart2, SpeculativeExpectedTokensFormula) {
  // Leviathan et al. 2023 eq. (1): (1 - a^(K+1)) / (1 - a).
  EXPECT_NEAR(speculative_expected_tokens(0.7, 4), (1 - std::pow(0.7, 5)) / 0.3, 1e-12);
  EXPECT_NEAR(speculative_expected_tokens(0.7, 4), 2.7731, 1e-4);
  EXPECT_DOUBLE_EQ(speculative_expected_tokens(0.0, 4), 1.0);
  EXPECT_DOUBLE_EQ(speculative_expected_tokens(1.0, 4), 5.0);
}

TEST(ServingPart2, SpeculativeDecodingSpeedsUpOrSlowsDown) {
  ServingRequest r = req(1024, 1, 128);
  r.draft_model = &model("llama3-8b");
  r.acceptance_rate = 0.8;
  r.draft_tokens = 4;
  const ServingResult s = serve(model("llama3-70b"), hw("h200"), r);
  ASSERT_TRUE(s.speculative);
  // One engine iteration: 4 draft steps and the verify pass around one round of host work (20 calls
  // at the H200's calibrated 14.01 us).
  EXPECT_NEAR(s.itl.si(), (4 * s.draft_step_time.si() + s.verify_time.si() + 20 * 14.01e-6) /
                              speculative_expected_tokens(0.8, 4), 1e-12);
  EXPECT_GT(s.speculative_speedup, 1.0);
  EXPECT_NEAR(s.speculative_speedup, s.itl_plain / s.itl, 1e-12);
  EXPECT_GT(s.draft_per_gpu.si(), 8e9 * 2);  // draft weights (+ its KV) are counted
  // The draft prefills the prompt too: TTFT = the target's prefill + the draft's.
  SolveRequest draft_prefill;
  draft_prefill.phase = Phase::Prefill, draft_prefill.seq_len = 1024;
  EXPECT_NEAR(s.draft_prefill.si(), solve(model("llama3-8b"), hw("h200"), draft_prefill).latency.si(), 1e-12);
  ServingRequest plain = req(1024, 1, 128);
  EXPECT_NEAR(s.ttft.si(), serve(model("llama3-70b"), hw("h200"), plain).ttft.si() + s.draft_prefill.si(), 1e-12);
  // A draft as large as the target never pays; one with another tokenizer cannot draft at all.
  ServingRequest same = req(1024, 1, 128);
  same.draft_model = &model("llama3-8b");
  same.acceptance_rate = 0.5;
  EXPECT_LT(serve(model("llama3-8b"), hw("h100"), same).speculative_speedup, 1.0);
  same.draft_model = &model("gpt2");  // 50257 tokens vs Llama 3's 128256
  EXPECT_THROW(serve(model("llama3-70b"), hw("h100"), same), BadInput);
  // A small draft that is rarely accepted slows decoding down.
  ServingRequest poor = req(1024, 1, 128);
  poor.draft_model = &model("llama3.2-3b");
  poor.acceptance_rate = 0.1;
  EXPECT_LT(serve(model("llama3-8b"), hw("h100"), poor).speculative_speedup, 1.0);
}

TEST(ServingPart2, TensorParallelWhenTheModelDoesNotFit) {
  // Llama-3 70B fp16 = 141 GB: 16 requests at 4K + 256 need tp = 4 on 80 GB GPUs.
  const ServingResult s = serve(model("llama3-70b"), hw("h100"), req(4096, 16, 256));
  EXPECT_TRUE(s.feasible);
  EXPECT_EQ(s.tp, 4);
  // Decode all-reduces: 2 per layer x 80 layers of batch x hidden x 2 B, on the DGX H100 node's
  // collective model (NCCL's calibrated NVLink 4 ring/NVLS, the faster at this size).
  const FleetCatalog& fleet = FleetCatalog::builtin();
  const Seconds ar = collective_time(CollectiveOp::AllReduce, Bytes(16.0 * 8192 * 2), place_group(4, 1, 8),
                                     fleet.standard_cluster("h100", 4))
                         .time;
  EXPECT_NEAR(s.decode_comm.si(), 160 * ar.si(), 1e-15);
  // 262 kB: the low-latency protocol's ring, 6 steps of its alpha + 1.5 x M over 73% of 450 GB/s.
  const Fabric& nvlink4 = fleet.fabric("nvlink4");
  EXPECT_NEAR(ar.si(), 6 * nvlink4.small_message_latency.si() +
                           1.5 * 16 * 8192 * 2 / (450e9 * nvlink4.small_message_efficiency),
              1e-12);
  // A device without a standard node (L40S: PCIe) keeps the ring over its link.
  EXPECT_FALSE(make_deployment(model("llama3-8b"), hw("l40s"), 2).node.has_value());
  // Request throughput counts prefill: batch x output tokens / end-to-end time; per-GPU tables
  // (TensorRT-LLM's "out tok/s/GPU") divide it over the replica's 4 GPUs.
  EXPECT_NEAR(s.request_tokens_per_s, 16.0 * 256 / s.e2e_latency.si(), 1e-9);
  EXPECT_NEAR(s.request_tokens_per_s_per_gpu, 16.0 * 256 / s.e2e_latency.si() / 4, 1e-9);
  ServingRequest one = req(4096, 16, 256);
  one.tp = 1;
  const ServingResult no = serve(model("llama3-70b"), hw("h100"), one);
  EXPECT_FALSE(no.feasible);
  const std::string msg = serving_does_not_fit_message(no, model("llama3-70b"));
  EXPECT_NE(msg.find("--tp 2"), std::string::npos);
  EXPECT_NE(msg.find("needs"), std::string::npos);
}

TEST(ServingPart2, DisaggregatedKvTransfer) {
  ServingRequest r = req(4096, 2, 64);
  r.decode_hardware = &hw("a100-80gb");
  r.kv_link_bandwidth = gigabytes_per_second(25);
  const ServingResult s = serve(model("llama3-8b"), hw("h100"), r);
  EXPECT_TRUE(s.disaggregated);
  EXPECT_EQ(s.gpus, 2);
  EXPECT_NEAR(s.kv_transfer.si(), 131072.0 * 2 * 4096 / 25e9 + 10e-6, 1e-12);
  EXPECT_NEAR(s.e2e_latency.si(), s.ttft.si() + s.kv_transfer.si() + 63 * s.itl.si(), 1e-12);
  // Decode on the A100 (2.0 TB/s) is slower than on the H100 (3.35 TB/s).
  EXPECT_GT(s.itl, serve(model("llama3-8b"), hw("h100"), req(4096, 2, 64)).itl);
  // The link is a finite, positive rate: an infinite one would make the transfer free and print "inf".
  for (const double gbs : {0.0, std::numeric_limits<double>::infinity()}) {
    r.kv_link_bandwidth = gigabytes_per_second(gbs);
    EXPECT_THROW(serve(model("llama3-8b"), hw("h100"), r), BadInput) << gbs;
  }
}

TEST(ServingPart2, ChunkedPrefill) {
  ServingRequest r = req(4096);
  r.prefill_chunk = 1024;
  const ServingResult c = serve(model("llama3-8b"), hw("h100"), r);
  const ServingResult u = serve(model("llama3-8b"), hw("h100"), req(4096));
  EXPECT_EQ(c.prefill_chunks, 4);
  EXPECT_LT(c.prefill_chunk_time, c.ttft);
  EXPECT_GE(c.ttft.si(), u.ttft.si() * 0.98);  // same work; chunks re-read weights and KV
}

TEST(ContinuousBatching, StaticVsPagedHandComputed) {
  BatchingRequest b;
  b.seq_len = 4096;
  b.mean_tokens = 1000;
  b.max_batch = 1024;  // vLLM's OpenAI-server default; memory binds first
  const BatchingResult r = continuous_batching(model("llama3-8b"), hw("h100"), b);
  // Paged: ceil(1000/16) * 16 = 1008 tokens; static: 4096 tokens.
  EXPECT_DOUBLE_EQ(r.paged.allocated_tokens, 1008);
  EXPECT_DOUBLE_EQ(r.static_alloc.allocated_tokens, 4096);
  EXPECT_EQ(r.paged.memory_limit, static_cast<int>(std::floor(r.kv_budget.si() / (131072.0 * 1008))));
  EXPECT_EQ(r.static_alloc.memory_limit, static_cast<int>(std::floor(r.kv_budget.si() / (131072.0 * 4096))));
  EXPECT_GT(r.max_concurrent_requests(), 3 * r.static_alloc.max_concurrent_requests);
  EXPECT_GT(r.speedup_vs_static, 1.0);
  // vLLM's pool: 0.9 x 79.19 GiB (the H100's CUDA-visible total) - weights - the sampler's profile
  // peak (1024 rows x 128256 vocabulary x 16 B, larger than the 8192-token forward pass) - 0.25 GiB.
  const double gib = 1024.0 * 1024 * 1024;
  EXPECT_DOUBLE_EQ(r.reserve.sampler_peak.si(), 1024.0 * 128256 * 16);
  EXPECT_GT(r.reserve.sampler_peak, r.reserve.forward_peak);
  EXPECT_NEAR(r.kv_budget.si(),
              0.9 * 79.19 * gib - r.weights_per_gpu.si() - 1024.0 * 128256 * 16 - 0.25 * gib, 1);
}

TEST(ContinuousBatching, ItlSloBindsBeforeMemory) {
  // Tutorial exercise: Llama-3 8B, H100, 4K context, ITL < 10 ms.
  BatchingRequest b;
  b.seq_len = 4096;
  b.itl_slo = milliseconds(10);
  const BatchingResult r = continuous_batching(model("llama3-8b"), hw("h100"), b);
  const int n = r.paged.max_concurrent_requests;
  ASSERT_GT(n, 0);
  EXPECT_LT(n, r.paged.memory_limit);
  EXPECT_EQ(r.paged.binding, "ITL SLO");
  const ServingDeployment d = make_deployment(model("llama3-8b"), hw("h100"), 1);
  const double host = 20 * 25.03e-6;  // the serving runtime's host work per iteration
  EXPECT_LE(time_step(d, Phase::Decode, n, 1, 4095).latency.si() + host, 0.010);
  EXPECT_GT(time_step(d, Phase::Decode, n + 1, 1, 4095).latency.si() + host, 0.010);
}

TEST(ContinuousBatching, PagedAttentionPublishedUtilization) {
  // Kwon et al. 2023 (vLLM), Fig. 2: systems that reserve the maximum length keep only ~20-40%
  // of KV memory in use; vLLM ~96%. ShareGPT (their Table/Fig. 11) averages ~161 prompt + ~338
  // output tokens against OPT's 2048-token maximum.
  const double mean = 161.31 + 337.99;
  const KvAllocation st = static_kv_allocation(mean, 2048);
  const KvAllocation pg = paged_kv_allocation(mean, 16);
  EXPECT_GT(st.utilization(), 0.20);
  EXPECT_LT(st.utilization(), 0.40);
  EXPECT_GT(pg.utilization(), 0.96);
  // Waste is confined to the last block: < 1 block of tokens.
  EXPECT_LT(pg.allocated_tokens - pg.used_tokens, 16);
}

TEST(ContinuousBatching, VllmStartupReserveHandComputed) {
  // vLLM 0.19 profiles 8192 tokens and samples min(max_num_seqs, 8192) rows: fp32 logits + a
  // sorted fp32 copy + int64 indices = 16 B per (row, vocabulary entry).
  EXPECT_DOUBLE_EQ(sampler_peak_bytes(1024, 128256).si(), 1024.0 * 128256 * 16);  // 1.96 GiB
  EXPECT_DOUBLE_EQ(serving_runtime_buffers(1).si(), 0.25 * 1024 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(serving_runtime_buffers(4).si(), 2.1 * 1024 * 1024 * 1024);
  BatchingRequest b;
  b.seq_len = 1024;
  b.memory_utilization = 0.95;
  b.max_batch = 65536;  // more sequences than the profile's 8192 tokens: 8192 rows
  const BatchingResult wide = continuous_batching(model("llama3.1-8b"), hw("h100"), b);
  EXPECT_DOUBLE_EQ(wide.reserve.sampler_rows, 8192);
  EXPECT_DOUBLE_EQ(wide.reserve.sampler_peak.si(), 8192.0 * 128256 * 16);
  // Tensor parallelism halves the weights but adds the all-reduce buffers; the sampler still
  // samples the full (gathered) vocabulary on every rank.
  b.max_batch = 1024;
  const BatchingResult one = continuous_batching(model("llama3.1-8b"), hw("h100"), b);
  b.tp = 2;
  const BatchingResult two = continuous_batching(model("llama3.1-8b"), hw("h100"), b);
  EXPECT_DOUBLE_EQ(two.reserve.sampler_peak.si(), one.reserve.sampler_peak.si());
  EXPECT_NEAR((two.kv_budget - one.kv_budget).si(),
              (one.weights_per_gpu - two.weights_per_gpu).si() - (2.1 - 0.25) * 1024 * 1024 * 1024 -
                  (two.reserve.profile_peak() - one.reserve.profile_peak()).si(),
              1.0);
}

TEST(ContinuousBatching, StartupReserveNamesItsOwnRemedy) {
  ServingReserve r;
  r.sampler_rows = 8192;
  r.sampler_peak = gigabytes(16.8);
  r.forward_peak = gigabytes(0.7);
  EXPECT_NE(reserve_remedy(r, gigabytes(13)).find("--max-batch"), std::string::npos);
  EXPECT_EQ(reserve_remedy(r, gigabytes(20)), "");  // shrinking the reserve cannot close a 20 GB gap
  r.forward_peak = gigabytes(86.7);
  EXPECT_NE(reserve_remedy(r, gigabytes(13)).find("--max-batched-tokens"), std::string::npos);
}

RC_GTEST_PROP(ServingProps, MoreSequencesNeverGrowTheKvPool, ()) {
  // A larger --max-batch can only enlarge vLLM's sampler profile, so the KV pool never grows.
  const int a = *rc::gen::inRange(1, 20000);
  const int extra = *rc::gen::inRange(0, 20000);
  BatchingRequest b;
  b.seq_len = 2048;
  b.max_batch = a;
  const Bytes small = continuous_batching(model("llama3-8b"), hw("h100"), b).kv_budget;
  b.max_batch = a + extra;
  RC_ASSERT(continuous_batching(model("llama3-8b"), hw("h100"), b).kv_budget <= small);
}

TEST(ServingErrors, BadInputsNameTheField) {
  auto expect_bad = [](auto f, const char* needle) {
    try {
      f();
      ADD_FAILURE() << "expected BadInput mentioning " << needle;
    } catch (const BadInput& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const ModelSpec& m = model("llama3-8b");
  const HardwareSpec& h = hw("h100");
  expect_bad([&] { serve(m, h, req(0)); }, "--seq-len");
  expect_bad([&] { serve(m, h, req(128, 0)); }, "--batch-size");
  expect_bad([&] { serve(m, h, req(128, 1, -5)); }, "--output-len");
  expect_bad([&] { serve(m, h, req(8000, 1, 1000)); }, "at most");
  // The last generated token is never fed back: a full 8192-token prompt may still emit one token
  // (time to first token), not two.
  EXPECT_NO_THROW(serve(m, h, req(8192, 1, 1)));
  expect_bad([&] { serve(m, h, req(8192, 1, 2)); }, "at most 8192");
  ServingRequest a = req(128);
  a.draft_model = &model("llama3-8b");
  a.acceptance_rate = 1.5;
  expect_bad([&] { serve(m, h, a); }, "--acceptance-rate");
  a.acceptance_rate = -0.1;
  expect_bad([&] { serve(m, h, a); }, "--acceptance-rate");
  a.acceptance_rate = 0.5;
  a.draft_tokens = 0;
  expect_bad([&] { serve(m, h, a); }, "--draft-tokens");
  ServingRequest c = req(128);
  c.prefill_chunk = -1;
  expect_bad([&] { serve(m, h, c); }, "--prefill-chunk");
  // The runtime's host work is a measured-engine term: the textbook model has no overhead terms.
  ServingRequest textbook = req(128);
  textbook.tp = 1;
  textbook.efficiency = 0.5;
  textbook.overrides.step_host = microseconds(100);
  expect_bad([&] { serve(m, h, textbook); }, "--step-host-us");
  textbook.overrides.step_host = microseconds(-1);
  textbook.efficiency = 0;
  expect_bad([&] { serve(m, h, textbook); }, "[0, 1e6]");
  // An error no tensor-parallel degree can change (here the math precision) is said as it is, not
  // as "no tensor-parallel degree works" (the search over degrees met it at every one).
  ServingRequest w = req(128);
  w.precision = Precision::BF16;
  w.overrides.compute_precision = Precision::INT4;
  try {
    serve(m, h, w);
    ADD_FAILURE() << "int4 math under bf16 weights was accepted";
  } catch (const BadInput& e) {
    const std::string what = e.what();  // h100: no int4 path at all
    EXPECT_EQ(what.rfind("h100 has no int4 compute path", 0), 0u) << what;
    EXPECT_EQ(what.find("tensor-parallel"), std::string::npos) << what;
  }
  ServingRequest t = req(128);
  t.tp = 3;
  expect_bad([&] { serve(m, h, t); }, "tp must");
  ServingRequest u = req(128);
  u.memory_utilization = 1.5;
  expect_bad([&] { serve(m, h, u); }, "--memory-utilization");
  expect_bad([&] { serve(model("resnet50"), h, req(128)); }, "decoder");
  BatchingRequest b;
  b.seq_len = 1024;
  b.page_size = 0;
  expect_bad([&] { continuous_batching(m, h, b); }, "--page-size");
  b.page_size = 16;
  b.mean_tokens = 2000;
  expect_bad([&] { continuous_batching(m, h, b); }, "--mean-tokens");
}

TEST(ServingCli, JsonFieldsAndExitCodes) {
  auto run = [](const std::string& args, int& rc) {
    const std::string cmd = std::string(MLSYSIM_BINARY) + " " + args + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    rc = WEXITSTATUS(pclose(p));
    return out;
  };
  int rc = -1;
  const auto j = nlohmann::json::parse(
      run("--format json serve --model llama3-8b --hardware h100 --seq-len 4096 --batch-size 1", rc));
  EXPECT_EQ(rc, 0);
  for (const char* k : {"ttft_s", "itl_s", "kv_cache_bytes_per_request", "tokens_per_s",
                        "request_tokens_per_s", "request_tokens_per_s_per_gpu",
                        "memory_footprint_bytes", "feasible", "max_concurrent_requests", "trace"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_TRUE(j["max_concurrent_requests"].contains("static"));
  EXPECT_TRUE(j["max_concurrent_requests"].contains("paged"));
  const auto no = nlohmann::json::parse(
      run("--format json serve -m llama3-70b -H h100 --seq-len 4096 --tp 1", rc));
  EXPECT_EQ(rc, 2);
  EXPECT_FALSE(no["feasible"].get<bool>());
  run("serve -m llama3-8b -H h100 --seq-len 128 --draft-model llama3-8b --acceptance-rate 2", rc);
  EXPECT_EQ(rc, 1);
  // A --catalog fabric override (a slower NVLink 4, as a user's own nccl-tests fit might give)
  // reaches the tensor-parallel all-reduces.
  const std::string dir = "/tmp/mlsysim_test_serve_fabric";
  std::system(("mkdir -p " + dir).c_str());
  std::ofstream(dir + "/fabric.toml") << "[[fabric]]\nid = \"nvlink4\"\nname = \"slow NVLink 4\"\n"
                                         "kind = \"nvlink\"\nper_direction_gbps_bytes = 450\nlatency_us = 100\n"
                                         "collective_efficiency = 0.8\nin_network_reduction = false\nsource = \"test\"\n";
  const std::string tp4 = "--format json serve -m llama3-70b -H h100 --seq-len 128 --batch-size 8 --tp 4";
  const double builtin = nlohmann::json::parse(run(tp4, rc))["itl_s"].get<double>();
  const double slow = nlohmann::json::parse(run("--catalog " + dir + " " + tp4, rc))["itl_s"].get<double>();
  // 160 all-reduces per step, each at least 6 ring steps x 100 us.
  EXPECT_GT(slow - builtin, 160 * 6 * 100e-6 * 0.9);
}

RC_GTEST_PROP(ServingProps, ExpectedTokensBoundedAndMonotone, ()) {
  const int k = *rc::gen::inRange(1, 17);
  const double a = *rc::gen::inRange(0, 1000) / 1000.0;
  const double b = std::min(1.0, a + *rc::gen::inRange(1, 100) / 1000.0);
  const double ea = speculative_expected_tokens(a, k), eb = speculative_expected_tokens(b, k);
  RC_ASSERT(ea >= 1.0 - 1e-12);
  RC_ASSERT(eb <= k + 1.0 + 1e-12);
  RC_ASSERT(eb >= ea - 1e-12);
}

RC_GTEST_PROP(ServingProps, PagedNeverWorseThanStaticForShorterRequests, ()) {
  const int max_len = *rc::gen::inRange(64, 8192);
  const int used = *rc::gen::inRange(1, max_len - 16);
  const int page = *rc::gen::element(8, 16, 32);
  const KvAllocation pg = paged_kv_allocation(used, page);
  RC_ASSERT(pg.allocated_tokens >= used);
  RC_ASSERT(pg.allocated_tokens < used + page);
  RC_ASSERT(pg.utilization() + 1e-12 >= static_kv_allocation(used, max_len).utilization() ||
            pg.allocated_tokens > max_len);
}

TEST(ServingPart2, TensorParallelOverAHostLinkGetsPcieAchievedShare) {
  // L40S lists no GPU-GPU interconnect: the all-reduces ride PCIe Gen4 x16, 32 GB/s per direction
  // on paper, 86% of it in bulk DMA (55.2 of 64 GB/s measured on H100's Gen5 link).
  ServingRequest r = req(128, 64, 128);
  r.precision = Precision::FP8;
  r.tp = 2;
  const ServingResult s = serve(model("llama2-70b"), hw("l40s"), r);
  const LinkCost pcie{BytesPerSecond(32e9 * 0.86), hw("l40s").host_link->latency};
  const Seconds one = ring_allreduce_time(Bytes(64.0 * 8192 * 2), 2, pcie);  // batch x hidden x bf16
  EXPECT_NEAR(s.decode_comm.si(), 2 * 80 * one.si(), 1e-12);
  // Invariant: a slower link never makes the step faster than the raw-line-rate ring.
  const Seconds raw = ring_allreduce_time(Bytes(64.0 * 8192 * 2), 2, {BytesPerSecond(32e9), pcie.latency});
  EXPECT_GT(s.decode_comm.si(), 2 * 80 * raw.si());
}

TEST(ServingPart2, TensorParallelBeyondABridgeRidesTheHostLink) {
  // An RTX A6000's NVLink bridge joins 2 cards (catalog [device.interconnect] gpus = 2): TP 2 rides
  // it at line rate, TP 4 the PCIe Gen4 x16 host link at 86% of 32 GB/s per direction.
  const HardwareSpec& a6000 = hw("rtx-a6000");
  ASSERT_TRUE(a6000.interconnect && a6000.host_link);
  ASSERT_EQ(a6000.interconnect->reach, 2);
  ServingRequest r = req(128, 8, 128);
  r.tp = 2;
  const ServingResult bridged = serve(model("llama3-8b"), a6000, r);
  const Bytes msg(8.0 * 4096 * 2);  // batch x hidden x bf16
  const LinkCost bridge{a6000.interconnect->per_direction, a6000.interconnect->latency};
  EXPECT_NEAR(bridged.decode_comm.si(), 2 * 32 * ring_allreduce_time(msg, 2, bridge).si(), 1e-12);
  r.tp = 4;
  const ServingResult pcie = serve(model("llama3-8b"), a6000, r);
  const LinkCost host{BytesPerSecond(32e9 * 0.86), a6000.host_link->latency};
  EXPECT_NEAR(pcie.decode_comm.si(), 2 * 32 * ring_allreduce_time(msg, 4, host).si(), 1e-12);
  EXPECT_NE(pcie.link_name.find("joins only 2"), std::string::npos) << pcie.link_name;
  // More devices than one server holds, with no standard node to span: a clear error.
  r.tp = 16;
  const std::string refusal = mlsysim::testing::bad_input_of([&] { (void)serve(model("llama3-8b"), a6000, r); });
  EXPECT_NE(refusal.find("--tp 16"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("--tp <= 8"), std::string::npos) << refusal;
}

TEST(ServingPart2, DoesNotFitRemediesNameOnlyNarrowerPrecisions) {
  // Llama-3 70B on one H100 does not fit at any of these precisions; the remedies name only a
  // precision narrower than the one in use.
  ServingRequest r = req(4096, 64, 256);
  r.tp = 1;
  const ServingResult wide = serve(model("llama3-70b"), hw("h100"), r);
  ASSERT_FALSE(wide.feasible);
  const std::string bf16 = serving_does_not_fit_message(wide, model("llama3-70b"));
  EXPECT_NE(bf16.find("--precision int8 or int4"), std::string::npos) << bf16;
  EXPECT_NE(bf16.find("--kv-precision fp8"), std::string::npos) << bf16;
  r.precision = Precision::FP8;
  r.kv_precision = Precision::FP8;
  const ServingResult narrow = serve(model("llama3-70b"), hw("h100"), r);
  ASSERT_FALSE(narrow.feasible);
  const std::string fp8 = serving_does_not_fit_message(narrow, model("llama3-70b"));
  EXPECT_NE(fp8.find("--precision int4"), std::string::npos) << fp8;
  EXPECT_EQ(fp8.find("int8"), std::string::npos) << fp8;
  EXPECT_EQ(fp8.find("--kv-precision"), std::string::npos) << fp8;
}

TEST(ServingPart2, QuantizedHeadIsTheUsersChoice) {
  // int4 Llama-3 8B: the 128256 x 4096 LM head at 2 B (default, as AWQ/GPTQ and TensorRT-LLM keep
  // it) or at 0.5 B (--quantize-head, as gpt-fast): exactly that difference in weights per GPU, and
  // a decode step that reads fewer bytes is never slower.
  ServingRequest r = req(1024, 8, 128);
  r.precision = Precision::INT4;
  const ServingResult kept = serve(model("llama3-8b"), hw("h100"), r);
  r.quantize_head = true;
  const ServingResult quantized = serve(model("llama3-8b"), hw("h100"), r);
  EXPECT_DOUBLE_EQ((kept.weights_per_gpu - quantized.weights_per_gpu).si(), 128256.0 * 4096 * (2 - 0.5));
  EXPECT_LT(quantized.itl.si(), kept.itl.si());
}

TEST(ServingPart2, WeightOnlyQuantizationReadsNarrowWeightsAndMultipliesAtTheMathPrecision) {
  // AWQ/GPTQ-style int4 weights with 16-bit math (--compute-precision bf16) on an A100, which has
  // INT4 tensor cores: the compute-bound prefill of 8 x 1024 tokens runs at the 16-bit peak, so it
  // is slower than int4 math; the memory-bound decode step reads the same 0.5 B/param weights, so it
  // is faster than bf16 weights. Both through serve, as through solve.
  ServingRequest r = req(1024, 8, 128);
  r.precision = Precision::INT4;
  const ServingResult int4_math = serve(model("llama3-8b"), hw("a100-80gb"), r);
  r.overrides.compute_precision = Precision::BF16;
  const ServingResult weight_only = serve(model("llama3-8b"), hw("a100-80gb"), r);
  r.precision = Precision::BF16;
  r.overrides.compute_precision.reset();
  const ServingResult bf16 = serve(model("llama3-8b"), hw("a100-80gb"), r);
  EXPECT_GT(weight_only.ttft.si(), int4_math.ttft.si());
  EXPECT_DOUBLE_EQ(weight_only.weights_per_gpu.si(), int4_math.weights_per_gpu.si());
  EXPECT_LT(weight_only.itl.si(), bf16.itl.si());
  // The decode step is the engine's: serve passes the math precision to solve.
  SolveRequest s;
  s.phase = Phase::Decode;
  s.batch = 8;
  s.context = 1024 + (128 - 2) / 2;
  s.precision = Precision::INT4;
  s.compute_precision = Precision::BF16;
  // (plus the serving runtime's host work per iteration: 20 calls at the A100's default 15 us)
  EXPECT_NEAR(weight_only.itl_plain.si(), solve(model("llama3-8b"), hw("a100-80gb"), s).latency.si() + 20 * 15e-6,
              1e-12);
}

TEST(ServingPart2, DynamicActivationScalingReachesTheEngine) {
  // serve passes --activation-scaling to every step it times: the decode step at batch 4 is the
  // engine's with dynamic scales, plus the runtime's host work (20 x 25.03 us on an H100).
  ServingRequest r = req(233, 4, 221);
  r.precision = Precision::FP8;
  r.kv_precision = Precision::BF16;
  r.overrides.activation_scaling = ActivationScaling::Dynamic;
  const ServingResult s = serve(model("qwen3-8b"), hw("h100"), r);
  SolveRequest d;
  d.phase = Phase::Decode, d.batch = 4, d.context = 233 + (221 - 2) / 2;
  d.precision = Precision::FP8, d.kv_precision = Precision::BF16;
  d.activation_scaling = ActivationScaling::Dynamic;
  EXPECT_NEAR(s.itl.si(), solve(model("qwen3-8b"), hw("h100"), d).latency.si() + 20 * 25.03e-6, 1e-12);
}

// A TP group wider than the device's node spans nodes: its all-reduces cross the scale-out
// network, so a decode step's communication never gets cheaper than inside one node (it once fell
// back to the GPU's NVLink alone and came out 70x cheaper at tp 16 than at tp 8).
TEST(ServingTensorParallel, GroupsBeyondOneNodeCrossTheScaleOutNetwork) {
  for (const char* device : {"h100", "a100-80gb"}) {
    const ServingDeployment in_node = make_deployment(model("llama3-70b"), hw(device), 8, {}, {}, 0,
                                                      Runtime::Graph, nullptr, false);
    const ServingDeployment two_nodes = make_deployment(model("llama3-70b"), hw(device), 16, {}, {}, 0,
                                                        Runtime::Graph, nullptr, false);
    ASSERT_TRUE(two_nodes.node.has_value()) << device;
    EXPECT_GT(two_nodes.node->nodes, 1) << device;
    EXPECT_NE(two_nodes.link_name.find("across 2 nodes"), std::string::npos) << two_nodes.link_name;
    const StepTime a = time_step(in_node, Phase::Decode, 8, 1, 1024);
    const StepTime b = time_step(two_nodes, Phase::Decode, 8, 1, 1024);
    // Same number of all-reduces (2 per layer), the same message (tokens x hidden): per all-reduce,
    // crossing the 50 GB/s NICs is never faster than NVLink.
    EXPECT_GE(b.comm.si(), a.comm.si()) << device;
  }
}

// Disaggregated: when the decode GPUs' ledger is the one that overflows, the message names them
// and their --decode-tp, not the prefill GPUs.
TEST(ServingPart2, DisaggregatedOverflowNamesTheDecodeGpus) {
  ServingRequest r = req(2048);
  r.tp = 2;
  r.decode_hardware = &hw("h200");
  r.decode_tp = 1;
  const ServingResult s = serve(model("llama3-70b"), hw("h100"), r);
  ASSERT_FALSE(s.feasible);  // 141 GB of bf16 weights on one 141 GB H200
  EXPECT_TRUE(s.memory_on_decode);
  const std::string msg = serving_does_not_fit_message(s, model("llama3-70b"));
  EXPECT_NE(msg.find("h200"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--decode-tp 2"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("h100"), std::string::npos) << msg;
}


// A remedy suggests doubling TP only where the heads split over it and within one node: Falcon-180B's
// 232 heads (8 x 29) stop at tp 8; Llama-3 70B's 64 heads go to 8 (its 8 KV heads too).
TEST(ServingTensorParallel, RemediesSuggestOnlyATpTheModelSplitsOver) {
  EXPECT_EQ(doubled_tensor_parallel(model("llama3-70b"), 4, kMaxTensorParallel), 8);
  EXPECT_EQ(doubled_tensor_parallel(model("llama3-70b"), 8, kMaxTensorParallel), 0);  // beyond one node
  EXPECT_EQ(doubled_tensor_parallel(model("llama3-70b"), 8, 64), 16);  // 8 KV heads replicate over 16
  EXPECT_EQ(doubled_tensor_parallel(model("falcon-180b"), 8, 64), 0);  // 232 % 16 != 0
  EXPECT_EQ(more_tensor_parallel_remedy(model("llama3-70b"), 4, kMaxTensorParallel), "use --tp 8");
  EXPECT_NE(more_tensor_parallel_remedy(model("falcon-180b"), 8, 64).find("232 attention heads"), std::string::npos);
}
