// Board power (physics/power.hpp): the floor, the power limit, and how a step's energy is built
// from its operators. Published anchors: docs/PHYSICS.md, "Power".
#include <gtest/gtest.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/physics/power.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/solvers/serving.hpp"

using namespace mlsysim;

namespace {
const ModelSpec& model(const char* id) { return Catalog::builtin().model(id); }
const HardwareSpec& hw(const char* id) { return Catalog::builtin().hardware(id); }

const PowerCoefficients kDefaults = default_power_coefficients();
double body(double memory_share, double compute_share) {
  return body_power_fraction(kDefaults, memory_share, compute_share);
}

}  // namespace

TEST(Power, FloorIsAnIdleGpuHoldingAContext) {
  // H100 SXM with a CUDA context: 119-145 W of 700 W (NREL docs, gpu-burn #114).
  EXPECT_GE(kDefaults.idle * 700, 119.0);
  EXPECT_LE(kDefaults.idle * 700, 145.0);
  EXPECT_DOUBLE_EQ(body(0, 0), kDefaults.idle);
  EXPECT_DOUBLE_EQ(static_power(hw("h100")).si(), kDefaults.idle * 700);  // uncalibrated for power
}

TEST(Power, ComputeBoundKernelsRunAtThePowerLimit) {
  EXPECT_DOUBLE_EQ(body(0, 1), 1.0);
  EXPECT_DOUBLE_EQ(body(0.4, 1), 1.0);  // capped, never above the limit
  EXPECT_DOUBLE_EQ(body(1, 1), 1.0);
}

TEST(Power, MemoryBoundBodyDrawsSeventyPercent) {
  // The memory-bound end of ML.ENERGY's Llama-3.1-8B H100 curve: 0.70 of TDP for the kernel body.
  EXPECT_NEAR(body(1, 0), 0.70, 1e-12);
  EXPECT_NEAR(body(1, 0.1), kDefaults.idle + kDefaults.memory + 0.1 * kDefaults.compute, 1e-12);
}

TEST(Power, MoreActivityNeverDrawsLess) {
  for (double um = 0; um <= 1.0; um += 0.125)
    for (double uc = 0; uc <= 1.0; uc += 0.125) {
      const double p = body(um, uc);
      EXPECT_GE(p, kDefaults.idle);
      EXPECT_LE(p, 1.0);
      EXPECT_GE(body(um + 0.125, uc), p);
      EXPECT_GE(body(um, uc + 0.125), p);
    }
}

TEST(Power, StepEnergyIsEachOperatorAtItsOwnPowerAndGapsAtTheFloor) {
  SolveRequest r;
  r.batch = 8;
  const Profile p = solve(model("llama3-8b"), hw("h100"), r);
  double by_hand = 0;  // TDP x seconds, summed operator by operator
  for (const OperatorResult& o : p.operators) {
    const double c = o.timing.compute.si(), m = o.timing.memory.si(), t_body = std::max(c, m);
    if (t_body > 0) by_hand += t_body * body_power_fraction(kDefaults, m / t_body, c / t_body);
    by_hand += kDefaults.idle * o.timing.overhead.si();
  }
  EXPECT_NEAR(p.energy.si(), 700 * by_hand, 1e-9 * p.energy.si());
}

TEST(Power, LongPrefillSitsNearTheLimitAndBatchOneDecodeWellBelow) {
  SolveRequest prefill;
  prefill.phase = Phase::Prefill;
  prefill.seq_len = 4096;
  const Profile pf = solve(model("llama3-8b"), hw("h100"), prefill);
  EXPECT_GT(pf.average_power().si(), 0.9 * 700);
  SolveRequest decode;
  decode.batch = 1;
  const Profile d = solve(model("llama3-8b"), hw("h100"), decode);
  EXPECT_LT(d.average_power().si(), 0.70 * 700);  // memory-bound body, launch gaps at the floor
  EXPECT_GT(d.average_power().si(), kDefaults.idle * 700);
}

TEST(Power, ServingPowerPerGpuIsItsEnergyOverGpuSeconds) {
  ServingRequest q;
  q.seq_len = 634;
  q.output_len = 717;
  q.batch = 64;
  const ServingResult s = serve(model("llama3.1-8b"), hw("h100"), q);
  const double gpu_seconds = s.ttft.si() + s.itl.si() * (q.output_len - 1);  // one GPU
  const double energy = s.energy_per_token.si() * q.batch * q.output_len;
  EXPECT_NEAR(s.average_power_per_gpu.si(), energy / gpu_seconds, 1e-9 * energy / gpu_seconds);
  // More requests in flight keep the GPU busier: power rises with batch (ML.ENERGY's curves do).
  ServingRequest bigger = q;
  bigger.batch = 128;
  EXPECT_GT(serve(model("llama3.1-8b"), hw("h100"), bigger).average_power_per_gpu.si(),
            s.average_power_per_gpu.si());
}
