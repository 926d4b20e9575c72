// Calibration from microbenchmarks: the fit recovers the measured numbers it was given.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/calibration.hpp"
#include "mlsysim/physics/efficiency.hpp"
#include "mlsysim/solvers/engine.hpp"

using namespace mlsysim;

namespace {
std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
const std::string kH100 = std::string(MLSYSIM_SOURCE_DIR) +
                          "/catalog/calibration/measurements/H100_SXM5_80GB.json";
// A `vector` microbenchmark row that reports `bytes` timed at `fraction` of hw's datasheet bandwidth.
nlohmann::json vector_row(const HardwareSpec& hw, const char* op, double bytes, double fraction) {
  return nlohmann::json{
      {"op", op}, {"bytes", bytes}, {"seconds", bytes / (fraction * hw.memory_bandwidth.si())}};
}
// `board_power` readings of an H100: idle 105 W, a copy at 455 W, an 8192^3 bf16 GEMM at the limit.
nlohmann::json board_power_readings() {
  const nlohmann::json gemm = {{"m", 8192}, {"n", 8192}, {"k", 8192}, {"dtype", "bfloat16"}, {"power_w", 700.0}};
  return {{"idle_w", 105.0}, {"copy", {{"power_w", 455.0}, {"GBps", 3000.0}}}, {"gemm", gemm}};
}
}  // namespace

TEST(Calibration, MemoryEfficiencyIsMeasuredOverDatasheet) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  const std::string text = read(kH100);
  const auto j = nlohmann::json::parse(text);
  const CalibrationFit fit = fit_calibration(h100, text, "h100.json");
  EXPECT_NEAR(fit.profile.memory, j["memory"]["read_reduce_GBps"].get<double>() / 3350.0, 1e-12);
}

// A mistyped field is refused with its section, row and field (it used to surface as the JSON
// library's "type must be number, but is string", naming nothing); fields no fit reads may be anything.
TEST(Calibration, AMistypedFieldIsNamedWithItsRow) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  const auto message = [&](const nlohmann::json& j) -> std::string {
    try {
      fit_calibration(h100, j.dump(), "mb.json");
    } catch (const BadInput& e) {
      return e.what();
    }
    return "";
  };
  auto j = nlohmann::json::parse(read(kH100));
  j["gemm"][3]["seconds"] = "fast";
  EXPECT_EQ(message(j), "mb.json: gemm[3].seconds must be a number, got \"fast\"");
  j = nlohmann::json::parse(read(kH100));
  j["gemm"][0]["dtype"] = 16;
  EXPECT_EQ(message(j), "mb.json: gemm[0].dtype must be a string, got 16");
  j = nlohmann::json::parse(read(kH100));
  j["attention"][0]["causal"] = "yes";
  EXPECT_EQ(message(j), "mb.json: attention[0].causal must be true or false, got \"yes\"");
  j = nlohmann::json::parse(read(kH100));
  j["launch"]["eager_module_us_per_kernel"] = nullptr;
  EXPECT_EQ(message(j), "mb.json: launch.eager_module_us_per_kernel must be a number, got null");
  j = nlohmann::json::parse(read(kH100));
  j["gemm"][0]["note"] = "a free-text field";
  EXPECT_EQ(message(j), "");
}

// A file that beats the datasheet by more than noise is not a measurement of this device: calibrate
// refuses it instead of writing an efficiency above 1 (which --calibration then rejects) or capping it.
TEST(Calibration, MeasurementsFasterThanTheDatasheetAreRefused) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  auto j = nlohmann::json::parse(read(kH100));
  j["memory"]["read_reduce_GBps"] = 99999.0;  // 30x H100's 3350 GB/s
  EXPECT_THROW(fit_calibration(h100, j.dump(), "fast_memory.json"), BadInput);
  auto g = nlohmann::json::parse(read(kH100));
  for (auto& row : g["gemm"]) row["seconds"] = row["seconds"].get<double>() / 10;  // 10x every peak
  try {
    fit_calibration(h100, g.dump(), "fast_gemm.json");
    FAIL() << "GEMMs at 10x the dense peak accepted";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("faster than the datasheet allows"), std::string::npos) << e.what();
  }
  // The real file is within the datasheet: every fitted efficiency lies in (0, 1].
  const CalibrationFit fit = fit_calibration(h100, read(kH100), "h100.json");
  EXPECT_LE(fit.profile.memory, 1.0);
  for (double eta : fit.profile.gemm) EXPECT_LE(eta, 1.0);
}

TEST(Calibration, GemmEfficiencyMatchesLargeSquareGemms) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  const CalibrationFit fit = fit_calibration(h100, read(kH100), "h100.json");
  // The 8192^3 bf16 GEMM measured 792.8 TFLOP/s = 80.1% of 989.4 (waves: 4096 tiles / 132 SMs).
  const double bf16 = fit.profile.gemm[index_of(Precision::BF16)];
  EXPECT_GT(bf16, 0.70);
  EXPECT_LT(bf16, 0.90);
  // fp8 measured ~1.4 PFLOP/s of 1979: ~71%.
  EXPECT_NEAR(fit.profile.gemm[index_of(Precision::FP8)], 1407.3 / 1978.9, 0.08);
  // The fitted per-kernel model reproduces the isolated-kernel timings it was fitted on.
  EXPECT_LT(fit.median_abs_error, 0.20);
  // Eager per-call cost: tens of microseconds (PyTorch dispatch + launch), not milliseconds.
  EXPECT_GT(fit.profile.host_dispatch.si(), 5e-6);
  EXPECT_LT(fit.profile.host_dispatch.si(), 50e-6);
}

TEST(Calibration, AConvolutionCallsHostCostComesFromTheBatchOneConvRows) {
  // The batch-1 conv rows are back-to-back F.conv2d calls whose kernels take a few microseconds:
  // their median is a functional call's host time; module code adds the framework microbenchmark's
  // module-minus-functional rate. Recomputed here from the file.
  const auto& h100 = Catalog::builtin().hardware("h100");
  const std::string text = read(kH100);
  const auto j = nlohmann::json::parse(text);
  std::vector<double> batch1;
  for (const auto& r : j["conv"])
    if (r["batch"] == 1) batch1.push_back(r["seconds"].get<double>());
  ASSERT_EQ(batch1.size() % 2, 1u);  // an odd count: the median is one row
  std::sort(batch1.begin(), batch1.end());
  const double module_overhead = (j["launch"]["eager_module_us_per_kernel"].get<double>() -
                                  j["launch"]["eager_functional_us_per_kernel"].get<double>()) * 1e-6;
  const CalibrationFit fit = fit_calibration(h100, text, "h100.json");
  EXPECT_EQ(fit.conv_host_points, static_cast<int>(batch1.size()));
  EXPECT_NEAR(fit.profile.conv_host_dispatch.si(), batch1[batch1.size() / 2] + module_overhead, 1e-12);
  // Above the generic per-call cost: cuDNN does more per call than an element-wise op.
  EXPECT_GT(fit.profile.conv_host_dispatch.si(), fit.profile.host_dispatch.si());
  // Without the framework rates there is nothing to add it to: the device keeps what it had
  // (here: nothing).
  HardwareSpec uncalibrated = h100;
  uncalibrated.efficiency.conv_host_dispatch = Seconds(0);
  auto bare = j;
  bare["launch"].erase("eager_functional_us_per_kernel");
  EXPECT_EQ(fit_calibration(uncalibrated, bare.dump(), "bare.json").profile.conv_host_dispatch.si(), 0.0);
}

TEST(Calibration, EagerConvolutionsPayTheirOwnHostCost) {
  // ResNet-50 at batch 1 under eager dispatch is host-bound: the stem convolution (one call) costs
  // the convolution host time, its batch norm (one call) the generic one.
  SolveRequest r;
  r.runtime = Runtime::Eager;
  r.batch = 1;
  const auto& h100 = Catalog::builtin().hardware("h100");
  const Profile p = solve(Catalog::builtin().model("resnet50"), h100, r);
  const OperatorResult* stem = nullptr;
  const OperatorResult* norm = nullptr;
  for (const auto& o : p.operators) {
    if (!stem && o.name == "conv") stem = &o;
    if (!norm && o.name == "batchnorm") norm = &o;
  }
  ASSERT_TRUE(stem && norm);
  EXPECT_NEAR(stem->timing.host.si(), h100.efficiency.conv_host_dispatch.si(), 1e-15);
  EXPECT_NEAR(norm->timing.host.si(), h100.efficiency.host_dispatch.si(), 1e-15);
}

TEST(Calibration, BuiltInCalibrationsAreLoaded) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  const auto& h200 = Catalog::builtin().hardware("h200");
  EXPECT_NE(h100.efficiency.source.find("calibrated"), std::string::npos);
  EXPECT_NE(h200.efficiency.source.find("calibrated"), std::string::npos);
  EXPECT_EQ(Catalog::builtin().hardware("mi300x").efficiency.source.find("calibrated"),
            std::string::npos);
}

TEST(Calibration, AttentionFitRecoversAKnownRateCurve) {
  // Synthetic attention rows that follow rate = 0.6 x peak x keys / (keys + 200) exactly.
  const auto& h100 = Catalog::builtin().hardware("h100");
  auto j = nlohmann::json::parse(read(kH100));
  j["attention"] = nlohmann::json::array();
  const double peak = h100.peak(Precision::BF16).si();
  for (double s : {2048.0, 4096.0, 8192.0, 16384.0, 32768.0}) {
    const double flops = 4.0 * 32 * 128 * s * (s + 1) / 2, keys = (s + 1) / 2;
    const double seconds = flops / (peak * 0.6 * keys / (keys + 200));
    j["attention"].push_back({{"kind", "prefill"}, {"q_len", s}, {"causal", true},
                              {"flops", flops}, {"seconds", seconds}});
  }
  const CalibrationFit fit = fit_calibration(h100, j.dump(), "synthetic.json");
  EXPECT_EQ(fit.attention_points, 5);
  EXPECT_NEAR(fit.profile.attention, 0.6, 1e-9);
  EXPECT_NEAR(fit.profile.attention_half_keys, 200, 1e-6);
  EXPECT_EQ(fit.profile.attention_tail, 0);  // rows without a head dim: no tail term to fit
}

TEST(Calibration, AttentionFitSeparatesTheCausalTailFromTheRate) {
  // Synthetic rows timed as t = W / (0.65 peak) (1 + 220 / keys) + 1.2 x (the last 128-row block's
  // FLOPs) / (peak / 132 SMs), at batch 1 and 4 so the per-call tail and per-row terms separate.
  const auto& h100 = Catalog::builtin().hardware("h100");
  ASSERT_EQ(h100.compute_units, 132);
  auto j = nlohmann::json::parse(read(kH100));
  j["attention"] = nlohmann::json::array();
  const double peak = h100.peak(Precision::BF16).si();
  for (double batch : {1.0, 4.0})
    for (double s : {1024.0, 2048.0, 4096.0, 8192.0}) {
      const double flops = 4.0 * batch * 32 * 128 * s * (s + 1) / 2, keys = (s + 1) / 2;
      const double block = 2.0 * 128 * s * (128 + 128);
      const double seconds = flops / (0.65 * peak) * (1 + 220 / keys) + 1.2 * block / (peak / 132);
      j["attention"].push_back({{"kind", "prefill"}, {"batch", batch}, {"q_len", s},
                                {"head_dim", 128}, {"causal", true}, {"flops", flops},
                                {"seconds", seconds}});
    }
  const CalibrationFit fit = fit_calibration(h100, j.dump(), "synthetic.json");
  EXPECT_EQ(fit.attention_points, 7);  // batch 1 at 1024 tokens (~30 us) is under the host floor
  EXPECT_NEAR(fit.profile.attention, 0.65, 1e-6);
  EXPECT_NEAR(fit.profile.attention_half_keys, 220, 1e-3);
  EXPECT_NEAR(fit.profile.attention_tail, 1.2, 1e-6);
  EXPECT_NE(calibration_toml("h100", fit).find("attention_tail = 1.200"), std::string::npos);
}

TEST(Calibration, FrameworkMicrobenchmarkSetsTheEagerHostCost) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  auto j = nlohmann::json::parse(read(kH100));
  j["launch"] = {{"eager_module_us_per_kernel", 31.5}};
  const CalibrationFit fit = fit_calibration(h100, j.dump(), "x.json");
  EXPECT_TRUE(fit.host_from_framework);
  EXPECT_NEAR(fit.profile.host_dispatch.si(), 31.5e-6, 1e-15);
}

TEST(Calibration, VectorKernelBandwidthIsTheMedianOfLargeSingleKernelOps) {
  // Three large single-kernel rows at 60%, 80% and 90% of H100's 3.35 TB/s -> median 80%. A small
  // row (fits in L2) and a silu_mul row (two eager kernels, bytes not what moved) are ignored.
  const auto& h100 = Catalog::builtin().hardware("h100");
  auto j = nlohmann::json::parse(read(kH100));
  const double bw = h100.memory_bandwidth.si();
  j["vector"] = {vector_row(h100, "rms_norm", 268e6, 0.6), vector_row(h100, "add", 400e6, 0.8),
                 vector_row(h100, "add", 200e6, 0.9), vector_row(h100, "add", 16e6, 0.1),
                 vector_row(h100, "silu_mul", 900e6, 0.2)};
  const CalibrationFit fit = fit_calibration(h100, j.dump(), "x.json");
  EXPECT_EQ(fit.vector_points, 3);
  EXPECT_NEAR(fit.profile.vector_memory, 0.8, 1e-12);
  // Element-wise operators then stream at that fraction, copies and weights at the memory one.
  HardwareSpec fitted = h100;
  fitted.efficiency = fit.profile;
  const RateModel rates{&fitted, Runtime::Graph, 0};
  EXPECT_NEAR(achieved_bandwidth(rates, OpClass::Vector).si(), 0.8 * bw, 1);
  EXPECT_NEAR(achieved_bandwidth(rates, OpClass::Gemm).si(), fit.profile.memory * bw, 1);
}

TEST(Calibration, StridedBandwidthCountsTheTrafficThatMoved) {
  // silu_mul rows report 4 tensor-sizes but move 5 (silu writes and mul re-reads an intermediate):
  // rows timed at 40% and 50% of H100's bandwidth for the reported bytes stream at 50% and 62.5%
  // of it; the median is 56.25%.
  const auto& h100 = Catalog::builtin().hardware("h100");
  auto j = nlohmann::json::parse(read(kH100));
  const double bw = h100.memory_bandwidth.si();
  j["vector"] = {vector_row(h100, "add", 400e6, 0.9), vector_row(h100, "add", 200e6, 0.9),
                 vector_row(h100, "silu_mul", 940e6, 0.4), vector_row(h100, "silu_mul", 1880e6, 0.5),
                 vector_row(h100, "silu_mul", 8e6, 0.01)};
  CalibrationFit fit = fit_calibration(h100, j.dump(), "x.json");
  EXPECT_EQ(fit.strided_points, 2);
  EXPECT_NEAR(fit.profile.strided_memory, (0.5 + 0.625) / 2, 1e-12);
  // With two or more mul_strided rows (bytes exact), those are used instead.
  j["vector"].push_back(vector_row(h100, "mul_strided", 200e6, 0.3));
  j["vector"].push_back(vector_row(h100, "mul_strided", 400e6, 0.34));
  fit = fit_calibration(h100, j.dump(), "x.json");
  EXPECT_EQ(fit.strided_points, 2);
  EXPECT_NEAR(fit.profile.strided_memory, 0.32, 1e-12);
  EXPECT_NE(calibration_toml("h100", fit).find("strided_memory_efficiency = 0.3200"),
            std::string::npos);
  // A lower strided rate never makes a strided operator faster (and leaves the others alone).
  HardwareSpec fitted = h100;
  fitted.efficiency = fit.profile;
  const RateModel rates{&fitted, Runtime::Graph, 0};
  Operator strided, plain;
  strided.bytes = plain.bytes = 1e9;
  strided.strided_bytes = 1e9;
  EXPECT_GT(memory_time(rates, strided).si(), memory_time(rates, plain).si());
  EXPECT_NEAR(memory_time(rates, strided).si(), 1e9 / (0.32 * bw), 1e-15);
}

TEST(Calibration, TimedConvolutionShapesSetTheirOwnRate) {
  // Every conv row above the host-bound floor (40 us) is kept with its achieved FLOP/s.
  const auto& h100 = Catalog::builtin().hardware("h100");
  const auto j = nlohmann::json::parse(read(kH100));
  const CalibrationFit fit = fit_calibration(h100, j.dump(), "x.json");
  size_t timed = 0;
  double stem_seconds = 0, stem_flops = 0;
  for (const auto& r : j["conv"]) {
    if (r["seconds"].get<double>() < 40e-6) continue;
    ++timed;
    if (r["cin"] == 3 && r["batch"] == 256)
      stem_seconds = r["seconds"].get<double>(), stem_flops = r["flops"].get<double>();
  }
  EXPECT_EQ(fit.profile.conv_measured.size(), timed);
  ASSERT_GT(stem_seconds, 0);
  // The built-in H100 profile carries them, and ResNet-50's 3-channel 7x7 stem at batch 256 (the
  // same shape: 64 outputs, 3 x 49 channel-taps, 112 x 112 pixels) runs at the measured rate.
  SolveRequest r;
  r.phase = Phase::Inference;
  r.batch = 256;
  const Profile p = solve(Catalog::builtin().model("resnet50"), h100, r);
  const OperatorResult& stem = p.operators.front();
  ASSERT_EQ(std::string(stem.name), "conv");
  EXPECT_DOUBLE_EQ(stem.flops.si(), stem_flops);
  EXPECT_NEAR(stem.timing.compute.si(), stem_seconds, 1e-3 * stem_seconds);
  // A shape nobody timed (MobileNetV2's 3x3 stem, 32 outputs) keeps the tile model.
  const Profile mobile = solve(Catalog::builtin().model("mobilenetv2"), h100, r);
  EXPECT_LT(mobile.operators.front().timing.compute.si(), 0.25 * stem_seconds);
}

TEST(Calibration, RejectsMalformedInput) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  EXPECT_THROW(fit_calibration(h100, "{not json", "x"), BadInput);
  EXPECT_THROW(fit_calibration(h100, R"({"memory": {}, "gemm": []})", "x"), BadInput);
}

// FlashAttention-2 rows (bench/gpu/microbench.py prefill_backend, backend FLASH_ATTENTION) alone make a
// partial calibration. Timings made by hand from t = FLOPs / (eta peak shape) + scores / SFU + tail +
// launch with eta = 0.45 give back 0.45, and the TOML carries only that rate.
TEST(Calibration, FlashAttention2FitInvertsTheKernelModel) {
  const HardwareSpec& h100 = Catalog::builtin().hardware("h100");
  const double peak = h100.peak(Precision::BF16).si(), eta = 0.45;
  nlohmann::json rows = nlohmann::json::array();
  for (bool causal : {false, true}) {
    const double S = 8192, d = 64, heads = 32, batch = 2;
    const double keys = causal ? (S + 1) / 2 : S, scores = batch * heads * S * keys;
    const double flops = 4 * batch * heads * S * S * d / (causal ? 2 : 1);
    const double t = flops / (eta * peak * keys / (keys + h100.efficiency.attention_half_keys)) +
                     scores / h100.special_function_rate.si() +
                     h100.efficiency.attention_tail * 2 * 128 * S * 2 * d / (peak / h100.compute_units) +
                     h100.efficiency.kernel_overhead.si();
    rows.push_back({{"kind", "prefill_backend"}, {"backend", "FLASH_ATTENTION"}, {"batch", batch},
                    {"heads", heads}, {"head_dim", d}, {"q_len", S}, {"kv_len", S}, {"causal", causal},
                    {"seconds", t}});
  }
  const CalibrationFit fit = fit_calibration(h100, nlohmann::json{{"attention", rows}}.dump(), "rows");
  EXPECT_TRUE(fit.partial);
  EXPECT_EQ(fit.flash_attention2_points, 2);
  EXPECT_NEAR(fit.profile.flash_attention2, eta, 1e-9);
  const std::string toml = calibration_toml("h100", fit);
  EXPECT_NE(toml.find("flash_attention2_efficiency = 0.4500"), std::string::npos) << toml;
  EXPECT_EQ(toml.find("memory_efficiency"), std::string::npos) << toml;  // the rest stays the device's
  // Rows of other backends are not FlashAttention-2's.
  for (auto& r : rows) r["backend"] = "CUDNN_ATTENTION";
  EXPECT_THROW(fit_calibration(h100, nlohmann::json{{"attention", rows}}.dump(), "rows"), BadInput);
}

// The built-in H100 FlashAttention-2 rate is what the fit gives for its published input file today
// (it moves if the device's shape or tail terms are recalibrated: regenerate it then).
TEST(Calibration, BuiltInFlashAttention2RateIsReproducibleFromItsInput) {
  const HardwareSpec& h100 = Catalog::builtin().hardware("h100");
  const CalibrationFit fit = fit_calibration(
      h100, read(std::string(MLSYSIM_SOURCE_DIR) + "/catalog/calibration/measurements/fa3-paper-h100-flash-attention-2.json"),
      "published");
  EXPECT_EQ(fit.flash_attention2_points, 4);
  EXPECT_NEAR(fit.profile.flash_attention2, h100.efficiency.flash_attention2, 5e-5);
  EXPECT_EQ(fit.flash_attention2_backward_points, 2);
  EXPECT_NEAR(fit.profile.flash_attention2_backward, h100.efficiency.flash_attention2_backward, 5e-5);
  // Its backward kernel (5 matmuls, dQ accumulated across key blocks) runs further below the peak.
  EXPECT_LT(h100.efficiency.flash_attention2_backward, h100.efficiency.flash_attention2);
  // FlashAttention-2's mma.sync matmuls on Hopper: well below the wgmma kernels' calibrated rate.
  EXPECT_LT(h100.efficiency.flash_attention2, h100.efficiency.attention);
  // The H200 (same die and clocks) carries the H100's rate over.
  EXPECT_DOUBLE_EQ(Catalog::builtin().hardware("h200").efficiency.flash_attention2, h100.efficiency.flash_attention2);
}

// The head-dim table interpolates linearly in log2(head dim) and is flat beyond its ends.
TEST(Calibration, HeadDimFactorInterpolatesInLog2HeadDim) {
  EfficiencyProfile e;
  EXPECT_DOUBLE_EQ(attention_head_dim_factor(e, 64), 1.0);  // no table: no head-dim dependence
  e.attention_head_dim_rates = {{64, 0.5}, {128, 1.0}, {256, 1.2}};
  EXPECT_DOUBLE_EQ(attention_head_dim_factor(e, 128), 1.0);
  EXPECT_NEAR(attention_head_dim_factor(e, 96), 0.5 + 0.5 * std::log2(1.5), 1e-12);
  EXPECT_NEAR(attention_head_dim_factor(e, 192), 1.0 + 0.2 * std::log2(1.5), 1e-12);
  EXPECT_DOUBLE_EQ(attention_head_dim_factor(e, 32), 0.5);
  EXPECT_DOUBLE_EQ(attention_head_dim_factor(e, 512), 1.2);
}

// cuDNN rows (prefill_backend, backend CUDNN_ATTENTION) at head dims 64, 128 and 256 make a partial
// calibration of the default kernel's head-dim table. Rows built by hand from the default path's
// formula, t = (FLOPs / (eta peak shape) + tail) / f(d) + launch with f = 0.6, 1, 0.9, give those
// factors back (to the launch cost's share, ~0.1% at 16k).
TEST(Calibration, HeadDimTableFitInvertsTheKernelModel) {
  const HardwareSpec& h100 = Catalog::builtin().hardware("h100");
  const EfficiencyProfile& e = h100.efficiency;
  const double peak = h100.peak(Precision::BF16).si();
  const std::map<double, double> truth{{64, 0.6}, {128, 1.0}, {256, 0.9}};
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [d, f] : truth)
    for (bool causal : {false, true}) {
      const double S = 16384, heads = 2048 / d, keys = causal ? (S + 1) / 2 : S;
      const double flops = 4 * heads * S * S * d / (causal ? 2 : 1);
      const double t = (flops / (e.attention * peak * keys / (keys + e.attention_half_keys)) +
                        e.attention_tail * 2 * 128 * S * 2 * d / (peak / h100.compute_units)) / f +
                       e.kernel_overhead.si();
      rows.push_back({{"kind", "prefill_backend"}, {"backend", "CUDNN_ATTENTION"}, {"batch", 1},
                      {"heads", heads}, {"head_dim", d}, {"q_len", S}, {"kv_len", S}, {"causal", causal},
                      {"seconds", t}});
    }
  // Backward rows (no causal mask, as the FlashAttention papers' backward charts): 2.5x the FLOPs at
  // b = 0.8 of the forward's rate at head dim 128 and g(64) = 0.75 of that at head dim 64.
  const std::map<double, double> backward_truth{{64, 0.75}, {128, 1.0}};
  const double b = 0.8;
  for (const auto& [d, g] : backward_truth) {
    const double S = 16384, heads = 2048 / d;
    const double flops = 2.5 * 4 * heads * S * S * d;
    const double t = (flops / (e.attention * peak * S / (S + e.attention_half_keys)) +
                      2.5 * e.attention_tail * 2 * 128 * S * 2 * d / (peak / h100.compute_units)) / (b * g) +
                     e.kernel_overhead.si();
    rows.push_back({{"kind", "prefill_backend"}, {"backend", "CUDNN_ATTENTION"}, {"pass", "backward"},
                    {"batch", 1}, {"heads", heads}, {"head_dim", d}, {"q_len", S}, {"kv_len", S},
                    {"causal", false}, {"seconds", t}});
  }
  const CalibrationFit fit = fit_calibration(h100, nlohmann::json{{"attention", rows}}.dump(), "rows");
  EXPECT_TRUE(fit.partial);
  EXPECT_EQ(fit.head_dim_rate_points, 4 + 1 + 1);  // forward ratios, backward vs forward, backward ratio
  EXPECT_NEAR(fit.profile.attention_backward, b, 2e-3 * b);
  ASSERT_EQ(fit.profile.attention_backward_head_dim_rates.size(), 2u);
  EXPECT_NEAR(fit.profile.attention_backward_head_dim_rates.front().relative_rate, 0.75, 2e-3 * 0.75);
  EXPECT_EQ(fit.flash_attention2_points, 0);
  ASSERT_EQ(fit.profile.attention_head_dim_rates.size(), 3u);
  for (const HeadDimRate& r : fit.profile.attention_head_dim_rates)
    EXPECT_NEAR(r.relative_rate, truth.at(r.head_dim), 2e-3 * truth.at(r.head_dim)) << "head dim " << r.head_dim;
  const std::string toml = calibration_toml("h100", fit);
  EXPECT_NE(toml.find("[[calibration.attention_head_dim_rate]]\nhead_dim = 64\nrelative_rate = 0.60"),
            std::string::npos) << toml;
  EXPECT_EQ(toml.find("memory_efficiency"), std::string::npos) << toml;  // the rest stays the device's
  // Read back, the table is the device's (and the rest of its profile unchanged).
  Catalog c = Catalog::builtin();
  c.add_toml(toml, "fit.toml");
  EXPECT_NEAR(attention_head_dim_factor(c.hardware("h100").efficiency, 64), fit.profile.attention_head_dim_rates[0].relative_rate, 1e-4);
  EXPECT_DOUBLE_EQ(c.hardware("h100").efficiency.attention, e.attention);
  EXPECT_NEAR(c.hardware("h100").efficiency.attention_backward, fit.profile.attention_backward, 1e-4);
  EXPECT_EQ(c.hardware("h100").efficiency.attention_backward_head_dim_rates.size(), 2u);
  // Without rows at head dim 128 there is nothing to compare against.
  nlohmann::json no_reference = nlohmann::json::array();
  for (const auto& r : rows)
    if (r["head_dim"] != 128) no_reference.push_back(r);
  EXPECT_THROW(fit_calibration(h100, nlohmann::json{{"attention", no_reference}}.dump(), "rows"), BadInput);
}

// The built-in H100 head-dim table is what the fit gives for its published input file today, and the
// H200 (same die, same cuDNN kernels) carries it over.
TEST(Calibration, BuiltInHeadDimTableIsReproducibleFromItsInput) {
  const HardwareSpec& h100 = Catalog::builtin().hardware("h100");
  const CalibrationFit fit = fit_calibration(
      h100, read(std::string(MLSYSIM_SOURCE_DIR) + "/catalog/calibration/measurements/fa3-paper-h100-cudnn-attention.json"),
      "published");
  EXPECT_EQ(fit.head_dim_rate_points, 12);
  EXPECT_NEAR(fit.profile.attention_backward, h100.efficiency.attention_backward, 5e-5);
  ASSERT_EQ(fit.profile.attention_backward_head_dim_rates.size(), h100.efficiency.attention_backward_head_dim_rates.size());
  EXPECT_NEAR(fit.profile.attention_backward_head_dim_rates[0].relative_rate,
              h100.efficiency.attention_backward_head_dim_rates[0].relative_rate, 5e-5);
  ASSERT_EQ(fit.profile.attention_head_dim_rates.size(), h100.efficiency.attention_head_dim_rates.size());
  for (size_t i = 0; i < fit.profile.attention_head_dim_rates.size(); ++i) {
    EXPECT_DOUBLE_EQ(fit.profile.attention_head_dim_rates[i].head_dim, h100.efficiency.attention_head_dim_rates[i].head_dim);
    EXPECT_NEAR(fit.profile.attention_head_dim_rates[i].relative_rate,
                h100.efficiency.attention_head_dim_rates[i].relative_rate, 5e-5);
  }
  const auto& h200 = Catalog::builtin().hardware("h200").efficiency;
  EXPECT_DOUBLE_EQ(attention_head_dim_factor(h200, 64), attention_head_dim_factor(h100.efficiency, 64));
}

// Each GEMM row is one isolated call: the 16-bit memory-bound GEMVs' time beyond streaming their
// bytes is the isolated-call cost. Rows built by hand with a 20 us fixed cost give back 20 us.
TEST(Calibration, IsolatedCallCostComesFromThe16BitGemvs) {
  const HardwareSpec& h100 = Catalog::builtin().hardware("h100");
  nlohmann::json j = nlohmann::json::parse(read(kH100));
  const double bw = j["memory"]["read_reduce_GBps"].get<double>() * 1e9;
  for (auto& g : j["gemm"]) {
    const double m = g["m"], n = g["n"], k = g["k"];
    const bool gemv16 = m <= 8 && g["dtype"] == "bfloat16";
    if (gemv16) g["seconds"] = 20e-6 + (m * k + k * n + m * n) * 2 / bw;
  }
  const CalibrationFit fit = fit_calibration(h100, j.dump(), "rows");
  EXPECT_NEAR(fit.profile.isolated_call.si(), 20e-6, 1e-9);
  EXPECT_NE(calibration_toml("h100", fit).find("isolated_call_us = 20.00"), std::string::npos);
}

// Board power: the floor from the idle reading, the memory term from the copy, and the compute
// term from the GEMM (at the limit: floor + compute = 1; below it: what the floor and the GEMM's
// memory share leave). Read back, a device's energy follows its own readings.
TEST(Calibration, BoardPowerReadingsSetTheDevicesPowerCoefficients) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  auto j = nlohmann::json::parse(read(kH100));
  j["board_power"] = board_power_readings();
  CalibrationFit fit = fit_calibration(h100, j.dump(), "x.json");
  ASSERT_TRUE(fit.board_power);
  EXPECT_NEAR(fit.profile.power_idle, 105.0 / 700, 1e-12);
  EXPECT_NEAR(fit.profile.power_memory, (455.0 - 105.0) / 700, 1e-12);
  EXPECT_NEAR(fit.profile.power_compute, 1 - 105.0 / 700, 1e-12);  // at the limit
  EXPECT_NE(fit.profile.source.find("board power idle 105 W, copy 455 W, GEMM 700 W"), std::string::npos);
  const std::string toml = calibration_toml("h100", fit);
  const std::string fractions =
      "power_idle_fraction = 0.1500\npower_memory_fraction = 0.5000\npower_compute_fraction = 0.8500";
  EXPECT_NE(toml.find(fractions), std::string::npos) << toml;
  Catalog c = Catalog::builtin();
  c.add_toml(toml, "fit.toml");
  EXPECT_NEAR(static_power(c.hardware("h100")).si(), 105.0, 1e-9);
  SolveRequest decode;
  decode.batch = 1;
  const Profile own = solve(c.model("llama3-8b"), c.hardware("h100"), decode);
  const Profile published = solve(c.model("llama3-8b"), h100, decode);
  EXPECT_LT(own.energy.si(), published.energy.si());  // a lower floor and memory term: less energy

  // Below the limit the GEMM's own memory traffic takes its share first (t_memory / t_compute of
  // an 8192^3 bf16 GEMM at the fitted rates).
  j["board_power"]["gemm"]["power_w"] = 600.0;
  fit = fit_calibration(h100, j.dump(), "x.json");
  const double t_memory = 3.0 * 8192 * 8192 * 2 / (3350e9 * fit.profile.memory);
  const double t_compute = 2.0 * 8192 * 8192 * 8192 / (989.4e12 * fit.profile.gemm[index_of(Precision::BF16)]);
  EXPECT_NEAR(fit.profile.power_compute, 600.0 / 700 - 0.15 - 0.5 * t_memory / t_compute, 1e-9);
}

// The sustained matmul rate: bench/gpu/microbench.py's gemm_sustained row (8192^3 BF16 back to back
// for 12 s; its median window of the second half) over the dense BF16 peak. Read back, it slows the
// matrix kernels of a training step by sustained / burst, and leaves a prefill alone.
TEST(Calibration, SustainedGemmRowSetsTheTrainingClock) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  auto j = nlohmann::json::parse(read(kH100));
  j["gemm_sustained"] = nlohmann::json::array(
      {{{"m", 8192}, {"n", 8192}, {"k", 8192}, {"dtype", "fp8_e4m3"}, {"seconds_total", 12.0},
        {"burst_TFLOPs", 1300.0}, {"sustained_TFLOPs", 1150.0}},
       {{"m", 8192}, {"n", 8192}, {"k", 8192}, {"dtype", "bfloat16"}, {"seconds_total", 12.0},
        {"burst_TFLOPs", 760.0}, {"sustained_TFLOPs", 700.0}}});
  const CalibrationFit fit = fit_calibration(h100, j.dump(), "x.json");
  ASSERT_TRUE(fit.sustained);
  EXPECT_NEAR(fit.profile.sustained_gemm, 700e12 / 989.4e12, 1e-12);
  const std::string toml = calibration_toml("h100", fit);
  EXPECT_NE(toml.find("sustained_gemm_efficiency = 0.7075"), std::string::npos) << toml;
  Catalog c = Catalog::builtin();
  c.add_toml(toml, "fit.toml");
  const HardwareSpec& fitted = c.hardware("h100");
  EXPECT_NEAR(sustained_clock_factor({&fitted, Runtime::Graph, 0, true}),
              (700e12 / 989.4e12) / fitted.efficiency.gemm[index_of(Precision::BF16)], 1e-4);
  // Implausible: above the datasheet peak by more than timer noise.
  j["gemm_sustained"][1]["sustained_TFLOPs"] = 1100.0;
  try {
    fit_calibration(h100, j.dump(), "x.json");
    ADD_FAILURE() << "accepted 1100 TFLOP/s sustained on a 989 TFLOP/s device";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("sustained_TFLOPs must be in (0, 1039]"), std::string::npos) << e.what();
  }
}

TEST(Calibration, ImplausibleBoardPowerReadingsAreRefused) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  const auto base = nlohmann::json::parse(read(kH100));
  const auto refused = [&](const std::function<void(nlohmann::json&)>& change, const std::string& needle) {
    auto j = base;
    j["board_power"] = board_power_readings();
    change(j["board_power"]);
    try {
      fit_calibration(h100, j.dump(), "x.json");
      ADD_FAILURE() << "accepted: " << j["board_power"].dump();
    } catch (const BadInput& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused([](nlohmann::json& b) { b["idle_w"] = "105"; }, "idle_w must be a number of watts in (0, 735]");
  refused([](nlohmann::json& b) { b["copy"]["power_w"] = 900.0; }, "copy.power_w must be a number of watts");
  refused([](nlohmann::json& b) { b["copy"]["power_w"] = 90.0; }, "is not above idle_w");
  refused([](nlohmann::json& b) { b.erase("gemm"); }, "gemm.power_w must be a number of watts");
  refused([](nlohmann::json& b) { b["gemm"]["dtype"] = "int3"; }, "board_power.gemm needs m, n and k > 0");
  refused([](nlohmann::json& b) { b["gemm"]["power_w"] = 130.0; }, "leaves nothing for the math");
}
