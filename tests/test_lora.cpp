// LoRA fine-tuning (Hu et al. 2021): adapter counts by hand, the frozen base's backward, the ledger
// and the data-parallel sync of the adapters alone, and every refused combination.
#include <gtest/gtest.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/solvers/parallelism_optimizer.hpp"
#include "mlsysim/solvers/run_outlook.hpp"
#include "mlsysim/solvers/training.hpp"

using namespace mlsysim;

namespace {
const ModelSpec& model(const char* id) { return Catalog::builtin().model(id); }
const HardwareSpec& hw(const char* id) { return Catalog::builtin().hardware(id); }

SolveRequest train_step(int rank, LoraTargets targets = LoraTargets::Attention) {
  SolveRequest r;
  r.phase = Phase::Train;
  r.batch = 1;
  r.seq_len = 4096;
  r.lora = {rank, targets};
  return r;
}

// Sum of one pass's FLOPs over the operators that satisfy `keep`.
template <class Keep>
double pass_flops(const Profile& p, Pass pass, Keep keep) {
  double f = 0;
  for (const auto& o : p.operators)
    if (o.pass == pass && keep(o)) f += o.flops.si();
  return f;
}
bool adapter(const OperatorResult& o) { return std::string(o.name).rfind("lora_", 0) == 0; }
}  // namespace

// Llama-2-70B (h 8192, 64 query and 8 KV heads of 128, 80 layers): rank 16 on the fused QKV
// (8192 -> 8192 + 2 x 1024) and the output projection (8192 -> 8192) is
// 80 x 16 x ((8192 + 10240) + (8192 + 8192)) = 44,564,480 adapter weights; with the MLP too
// (gate/up 8192 -> 2 x 28672, down 28672 -> 8192) 80 x 16 x (65536 + 36864) more.
TEST(Lora, AdapterParametersByHand) {
  const Profile attention = solve(model("llama2-70b"), hw("h100"), train_step(16));
  EXPECT_DOUBLE_EQ(attention.trainable_parameters, 80.0 * 16 * ((8192 + 10240) + (8192 + 8192)));
  EXPECT_DOUBLE_EQ(attention.trainable_parameters, 44564480.0);
  const Profile all = solve(model("llama2-70b"), hw("h100"), train_step(16, LoraTargets::All));
  EXPECT_DOUBLE_EQ(all.trainable_parameters - attention.trainable_parameters,
                   80.0 * 16 * ((8192 + 2 * 28672) + (28672 + 8192)));
  // Without LoRA every weight trains.
  EXPECT_DOUBLE_EQ(solve(model("llama2-70b"), hw("h100"), train_step(0)).trainable_parameters,
                   attention.parameters);
}

// The frozen base's GEMMs compute input gradients only: their backward FLOPs equal their forward
// FLOPs (2x when they train); the adapters' backward is the usual 2x; attention keeps its 2.5x.
TEST(Lora, FrozenGemmsComputeOnlyInputGradients) {
  const auto gemm_not_adapter = [](const OperatorResult& o) { return o.cls == OpClass::Gemm && !adapter(o); };
  const Profile lora = solve(model("llama3-8b"), hw("h100"), train_step(16));
  EXPECT_NEAR(pass_flops(lora, Pass::Backward, gemm_not_adapter),
              pass_flops(lora, Pass::Forward, gemm_not_adapter), 1.0);
  EXPECT_NEAR(pass_flops(lora, Pass::Backward, adapter), 2.0 * pass_flops(lora, Pass::Forward, adapter), 1.0);
  const auto attention = [](const OperatorResult& o) { return o.cls == OpClass::Attention; };
  EXPECT_NEAR(pass_flops(lora, Pass::Backward, attention), 2.5 * pass_flops(lora, Pass::Forward, attention), 1.0);
  // No embedding gradient: nothing before it trains.
  for (const auto& o : lora.operators) EXPECT_FALSE(o.pass == Pass::Backward && o.role == OpRole::Embedding) << o.name;
  // Adam touches the adapters only: 12 FLOPs per trained parameter.
  EXPECT_NEAR(pass_flops(lora, Pass::Update, [](const OperatorResult&) { return true; }),
              12.0 * lora.trainable_parameters, 1.0);
  const Profile full = solve(model("llama3-8b"), hw("h100"), train_step(0));
  EXPECT_LT(lora.latency.si(), full.latency.si());
  EXPECT_GT(lora.latency.si(), 0.5 * full.latency.si());  // forward + input gradients: over half the work
}

// The ledger: the frozen base keeps its weights; the adapters add 16-bit weights and gradients and
// fp32 master + Adam moments (2 + 2 + 12 B each). A frozen MLP keeps no inputs for weight gradients:
// Llama-3 8B (h 4096, FFN 14336, 32 layers) at 4096 tokens saves 4096 x 32 x (4096 + 14336) x 2 B
// fewer activation bytes; with adapters on the MLP too, the full-training inventory stays.
TEST(Lora, LedgerHoldsStatesForTheAdaptersAlone) {
  const Profile lora = solve(model("llama3-8b"), hw("h100"), train_step(16));
  const Profile full = solve(model("llama3-8b"), hw("h100"), train_step(0));
  const double a = lora.trainable_parameters;
  EXPECT_NEAR(lora.memory.weights.si(), full.memory.weights.si() + 2 * a, 1);
  EXPECT_NEAR(lora.memory.gradients.si(), 2 * a, 1);
  EXPECT_NEAR(lora.memory.optimizer_states.si(), 12 * a, 1);
  EXPECT_DOUBLE_EQ(full.memory.activations.si() - lora.memory.activations.si(), 4096.0 * 32 * (4096 + 14336) * 2);
  const Profile all = solve(model("llama3-8b"), hw("h100"), train_step(16, LoraTargets::All));
  EXPECT_DOUBLE_EQ(all.memory.activations.si(), full.memory.activations.si());
}

// QLoRA (Dettmers et al. 2023): a 4-bit frozen base under 16-bit math is a valid training step,
// lighter than the 16-bit base by the weights' bytes; an integer base under integer math (the H100
// has int8 tensor cores, so int8 weights default to them) is not.
// Fused, an adapter's output is added in its up projection's epilogue; eager PEFT code
// (`result + lora_B(lora_A(x)) * scaling`) launches the scaling and the add separately.
TEST(Lora, EagerAdaptersLaunchTheirScaleAndAdd) {
  const auto up_kernels = [](Runtime runtime) {
    SolveRequest r = train_step(16);
    r.runtime = runtime;
    double kernels = 0;
    for (const auto& o : solve(model("llama3-8b"), hw("h100"), r).operators)
      if (std::string(o.name) == "lora_up" && o.pass == Pass::Forward) kernels += o.kernels;
    return kernels;
  };
  EXPECT_DOUBLE_EQ(up_kernels(Runtime::Graph), 2.0 * 32);  // QKV and output projection, 32 layers
  EXPECT_DOUBLE_EQ(up_kernels(Runtime::Eager), 3.0 * 2 * 32);
}

TEST(Lora, QuantizedBaseNeedsSixteenBitMath) {
  SolveRequest q = train_step(16);
  q.precision = Precision::INT8;
  EXPECT_THROW(solve(model("llama3-8b"), hw("h100"), q), BadInput);
  q.compute_precision = Precision::BF16;
  EXPECT_NO_THROW(solve(model("llama3-8b"), hw("h100"), q));
  q.precision = Precision::INT4;
  const Profile qlora = solve(model("llama3-8b"), hw("h100"), q);
  const Profile lora = solve(model("llama3-8b"), hw("h100"), train_step(16));
  EXPECT_LT(qlora.memory.weights.si(), 0.5 * lora.memory.weights.si());
  EXPECT_DOUBLE_EQ(qlora.memory.gradients.si(), lora.memory.gradients.si());
}

TEST(Lora, RefusedWhereItDoesNotApply) {
  SolveRequest decode;
  decode.phase = Phase::Decode;
  decode.lora.rank = 16;
  EXPECT_THROW(solve(model("llama3-8b"), hw("h100"), decode), BadInput);
  EXPECT_THROW(solve(model("resnet50"), hw("h100"), train_step(16)), BadInput);
  EXPECT_THROW(solve(model("llama3-8b"), hw("h100"), train_step(-1)), BadInput);
  EXPECT_THROW(solve(model("llama3-8b"), hw("h100"), train_step(4097)), BadInput);  // above the width 4096
  EXPECT_NO_THROW(solve(model("llama3-8b"), hw("h100"), train_step(4096)));
}

namespace {
TrainingResult train70b(int gpus, int tp, const LoraSpec& lora, int zero = 1) {
  TrainingRequest r;
  r.gpus = gpus;
  r.layout.tp = tp;
  r.global_batch = gpus / tp * 2;
  r.micro_batch = 1;
  r.seq_len = 4096;
  r.recompute = Recompute::Full;
  r.zero_stage = zero;
  r.lora = lora;
  return train(model("llama2-70b"), hw("h100"), FleetCatalog::builtin().standard_cluster("h100", gpus), r);
}
}  // namespace

// Distributed LoRA: gradients, optimizer states, the DP sync and the update cover the adapters
// only, so each is a small fraction of full training's; ZeRO-3 still gathers the frozen base.
TEST(Lora, DistributedStatesAndSyncCoverTheAdapters) {
  const LoraSpec lora{16, LoraTargets::Attention};
  const TrainingResult l = train70b(16, 8, lora), f = train70b(16, 8, {});
  EXPECT_DOUBLE_EQ(l.trainable_parameters, 44564480.0);
  EXPECT_DOUBLE_EQ(f.trainable_parameters, f.parameters);
  // Megatron's layout: 4 B fp32 gradients of this GPU's adapters (1/8 of them under TP 8, the
  // one stage holding all 80 layers), 12 B states sharded over DP 2.
  const double adapters_gpu = l.memory.gradients.si() / 4.0;
  EXPECT_NEAR(adapters_gpu, 44564480.0 / 8, 1);
  EXPECT_NEAR(l.memory.optimizer_states.si(), 12.0 * adapters_gpu / 2, 1);
  EXPECT_LT(l.memory.total().si(), f.memory.total().si());
  EXPECT_LT(l.dp_comm_time.si(), 0.01 * f.dp_comm_time.si());
  EXPECT_LT(l.optimizer_time.si(), 0.01 * f.optimizer_time.si());
  EXPECT_LT(l.step_time.si(), f.step_time.si());
  // ZeRO-3 gathers every sharded weight before forward and backward, frozen or not.
  EXPECT_GT(train70b(16, 8, lora, 3).dp_comm_time.si(), 100 * l.dp_comm_time.si());
}

// A LoRA run checkpoints its adapters' state (14 B each: 16-bit weight, fp32 master and moments);
// the frozen base is already on disk.
TEST(Lora, CheckpointsHoldTheAdapters) {
  const TrainingResult l = train70b(16, 8, {16, LoraTargets::Attention});
  EXPECT_DOUBLE_EQ(run_outlook(l, RunOptions{}).checkpoint_bytes.si(), 14.0 * 44564480.0);
  const TrainingResult f = train70b(16, 8, {});
  EXPECT_DOUBLE_EQ(run_outlook(f, RunOptions{}).checkpoint_bytes.si(), 14.0 * f.parameters);
}

// The layout search prices every candidate as a LoRA run when asked: its winner is one, and no
// slower than the full-training winner (the frozen base only removes work).
TEST(Lora, LayoutSearchCarriesTheAdapters) {
  OptimizerRequest q;
  q.gpus = 16;
  q.global_batch = 32;
  q.seq_len = 4096;
  q.threads = 1;
  const Cluster c = FleetCatalog::builtin().standard_cluster("h100", 16);
  const OptimizerResult full = optimize_parallelism(model("llama2-70b"), hw("h100"), c, q);
  q.lora = {16, LoraTargets::Attention};
  const OptimizerResult lora = optimize_parallelism(model("llama2-70b"), hw("h100"), c, q);
  EXPECT_EQ(lora.best().lora.rank, 16);
  EXPECT_DOUBLE_EQ(lora.best().trainable_parameters, 44564480.0);
  EXPECT_LT(lora.best().step_time.si(), full.best().step_time.si());
  EXPECT_GE(lora.feasible, full.feasible);  // less memory per layout: at least as many fit
}

TEST(Lora, TrainRefusesAQuantizedBase) {
  TrainingRequest r;
  r.gpus = 8;
  r.global_batch = 8;
  r.seq_len = 2048;
  r.precision = Precision::INT4;
  r.lora.rank = 16;
  EXPECT_THROW(train(model("llama3-8b"), hw("h100"), FleetCatalog::builtin().standard_cluster("h100", 8), r),
               BadInput);
}
