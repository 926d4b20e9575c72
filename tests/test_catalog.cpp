// Catalog: coverage, provenance, name resolution, and derived parameter counts vs published ones.
#include <gtest/gtest.h>

#include <tuple>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "input_errors.hpp"
#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/embedded.hpp"
#include "mlsysim/catalog/validation.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/transformer.hpp"

using namespace mlsysim;

namespace {
const Catalog& cat() { return Catalog::builtin(); }
}  // namespace

TEST(Catalog, CoversMicrocontrollersToCloud) {
  EXPECT_GE(cat().all_hardware().size(), 35u);
  EXPECT_GE(cat().all_models().size(), 30u);
  for (const char* id : {"esp32-s3", "cortex-m7", "a17-pro", "snapdragon-8-gen3", "jetson-orin-nano",
                         "jetson-agx-orin", "coral-edge-tpu", "rtx-4090", "m3-max", "v100",
                         "a100-40gb", "a100-80gb", "h100", "h100-pcie", "h200", "b200", "gb200",
                         "mi250x", "mi300x", "mi325x", "gaudi2", "gaudi3", "tpu-v4", "tpu-v5e",
                         "tpu-v5p", "tpu-v6e", "l4", "l40s", "cerebras-wse3", "groq-lpu"})
    EXPECT_NO_THROW((void)cat().hardware(id)) << id;
  for (const char* id :
       {"llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b", "llama3.1-8b",
        "llama3.1-70b", "llama3.1-405b", "mistral-7b", "mixtral-8x7b", "mixtral-8x22b",
        "deepseek-v3", "qwen2.5-72b", "gemma2-9b", "gemma2-27b", "phi3-mini", "gpt2", "gpt3-175b",
        "bert-base", "bert-large", "resnet50", "mobilenetv2", "efficientnet-b0", "vit-b16",
        "stable-diffusion-unet", "whisper-large-v3", "dlrm", "ds-cnn", "mobilenetv1-025"})
    EXPECT_NO_THROW((void)cat().model(id)) << id;
}

TEST(Catalog, NamesAreCaseAndSeparatorInsensitive) {
  EXPECT_EQ(cat().model("Llama3_8B").id, "llama3-8b");
  EXPECT_EQ(cat().model("LLAMA3-8B").id, "llama3-8b");
  EXPECT_EQ(cat().hardware("H100").id, "h100");
  EXPECT_EQ(cat().hardware("a100").id, "a100-80gb");  // the bare name means the 80 GB SXM part
  EXPECT_EQ(cat().hardware("MI300X").id, "mi300x");
  EXPECT_EQ(cat().hardware("Gaudi3").id, "gaudi3");
}

// Names as vendors, datasheets and Hugging Face write them resolve to the catalog entry.
TEST(Catalog, VendorAndHuggingFaceNamesResolve) {
  EXPECT_EQ(loose_name("meta-llama/Llama-3.1-8B-Instruct"), "llama3.18b");
  EXPECT_EQ(loose_name("NVIDIA H100 SXM5 80GB"), "h100sxm580gb");
  EXPECT_EQ(cat().hardware("NVIDIA H100").id, "h100");
  EXPECT_EQ(cat().hardware("NVIDIA H100 SXM5 80GB").id, "h100");  // the display name
  EXPECT_EQ(cat().hardware("rtx4090").id, "rtx-4090");
  EXPECT_EQ(cat().hardware("AMD MI300X").id, "mi300x");
  EXPECT_EQ(cat().model("meta-llama/Meta-Llama-3-8B").id, "llama3-8b");
  EXPECT_EQ(cat().model("meta-llama/Llama-3.1-8B-Instruct").id, "llama3.1-8b");
  EXPECT_EQ(cat().model("meta-llama/Llama-2-7b-chat-hf").id, "llama2-7b");
  EXPECT_EQ(cat().model("Qwen/Qwen2.5-7B-Instruct").id, "qwen2.5-7b");
  EXPECT_EQ(cat().model("google/gemma-2-9b-it").id, "gemma2-9b");
  // Still strict where it matters: a different size is a different model, and an unknown name
  // is an error.
  EXPECT_THROW((void)cat().model("meta-llama/Llama-3.1-405B-FP8-Instruct"), BadInput);
  EXPECT_THROW((void)cat().hardware("NVIDIA H300"), BadInput);
  // Every entry's own id, aliases and display name find that entry, or (when two entries share a
  // loose key) an exact spelling does: the loose key never hides an entry.
  for (const auto& hw : cat().all_hardware()) EXPECT_EQ(cat().hardware(hw.id).id, hw.id);
  for (const auto& m : cat().all_models()) {
    EXPECT_EQ(cat().model(m.id).id, m.id);
    for (const auto& a : m.aliases) EXPECT_EQ(cat().model(a).id, m.id) << a;
  }
}

TEST(Catalog, UnknownNamesSuggestTheClosestEntry) {
  try {
    (void)cat().model("llama3-8");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'llama3-8b'"), std::string::npos) << e.what();
  }
  try {
    (void)cat().hardware("h10");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
}

TEST(Catalog, EveryDeviceCitesItsNumbers) {
  for (const auto& hw : cat().all_hardware()) {
    EXPECT_TRUE(hw.sources.count("compute")) << hw.id;
    EXPECT_TRUE(hw.sources.count("memory")) << hw.id;
    EXPECT_TRUE(hw.sources.count("power")) << hw.id;
    EXPECT_GT(hw.memory_capacity.si(), 0) << hw.id;
    EXPECT_GT(hw.memory_bandwidth.si(), 0) << hw.id;
    EXPECT_GT(hw.tdp.si(), 0) << hw.id;
    if (hw.interconnect) EXPECT_TRUE(hw.sources.count("interconnect")) << hw.id;
    if (hw.price) EXPECT_TRUE(hw.sources.count("price")) << hw.id;
    // Sparse peaks are stored separately and are never below the dense ones.
    for (Precision p : kAllPrecisions)
      if (hw.sparse_peak[index_of(p)].si() > 0)
        EXPECT_GE(hw.sparse_peak[index_of(p)], hw.peak(p)) << hw.id << " " << to_string(p);
  }
}

TEST(Catalog, DensePeaksAreTheDefault) {
  // NVIDIA H100 SXM datasheet: BF16 989.4 TFLOP/s dense, 1,979 with 2:4 sparsity.
  const auto& h100 = cat().hardware("h100");
  EXPECT_NEAR(in_tflops(h100.peak(Precision::BF16)), 989.4, 0.5);
  EXPECT_NEAR(in_tflops(h100.sparse_peak[index_of(Precision::BF16)]), 1978.9, 1.0);
  EXPECT_NEAR(in_gb(h100.memory_capacity), 80, 1e-9);  // 80 GB, not 80 GiB
  EXPECT_NEAR(in_gbps(h100.memory_bandwidth), 3350, 1e-9);
  // NVLink 4: 900 GB/s is the bidirectional total; the catalog stores one direction.
  ASSERT_TRUE(h100.interconnect.has_value());
  EXPECT_NEAR(in_gbps(h100.interconnect->per_direction), 450, 1e-9);
}

// Derived parameter counts from the architecture spec vs the published totals.
TEST(Catalog, DerivedParameterCountsMatchPublished) {
  int checked = 0;
  for (const auto& m : cat().all_models()) {
    if (!m.published_params || m.kind == ModelKind::Opaque) continue;
    const double derived = parameter_count(m);
    const double rel = std::fabs(derived - *m.published_params) / *m.published_params;
    EXPECT_LT(rel, 0.02) << m.id << ": derived " << derived << " vs published " << *m.published_params;
    ++checked;
  }
  EXPECT_GE(checked, 28);
}

TEST(Catalog, WellKnownCountsByHand) {
  // Llama-3 8B: 32 x [4096*(4096+2*1024) + 4096*4096 + 3*4096*14336 + 2*4096] + 2*128256*4096 + 4096
  const double layer = 4096.0 * (4096 + 2 * 1024) + 4096.0 * 4096 + 3.0 * 4096 * 14336 + 2 * 4096;
  const double expected = 32 * layer + 2.0 * 128256 * 4096 + 4096;
  EXPECT_DOUBLE_EQ(parameter_count(cat().model("llama3-8b")), expected);
  EXPECT_NEAR(expected, 8.03e9, 0.01e9);
  // Mixtral 8x7B activates 2 of 8 experts: ~12.9 B active of 46.7 B (Jiang et al. 2024).
  const auto pb = transformer_params(cat().model("mixtral-8x7b").tf, ModelKind::Decoder);
  EXPECT_NEAR(pb.total() / 1e9, 46.7, 0.1);
  EXPECT_NEAR(pb.active() / 1e9, 12.9, 0.1);
  // DeepSeek-V3: 671 B total, 37 B activated per token (technical report, Table 1 / abstract).
  const auto ds = transformer_params(cat().model("deepseek-v3").tf, ModelKind::Decoder);
  EXPECT_NEAR(ds.total() / 1e9, 671, 1);
  EXPECT_NEAR(ds.active() / 1e9, 37, 1);
}

TEST(Catalog, ResNet50FlopsFromLayerShapes) {
  // torchvision ResNet-50: 4.09 GMACs per 224x224 image = 8.18 GFLOP at 2 FLOPs/MAC.
  const auto& m = cat().model("resnet50");
  double flops = 0;
  for (const auto& l : m.cnn_layers) {
    if (l.type == CnnLayer::Type::Conv)
      flops += 2.0 * l.cout * (l.cin / l.groups) * l.kernel_h * l.kernel_w * l.h_out * l.w_out;
    if (l.type == CnnLayer::Type::FullyConnected) flops += 2.0 * l.cin * l.cout;
  }
  EXPECT_NEAR(flops / 8.18e9, 1.0, 0.01);
}

TEST(Catalog, HuggingFaceConfigBecomesAModel) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mlsysim_test_hf" / "my-llama";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({
    "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
    "vocab_size": 128256, "max_position_embeddings": 8192, "tie_word_embeddings": false,
    "hidden_act": "silu"})";
  const ModelSpec m = model_from_hf_config((dir / "config.json").string());
  EXPECT_EQ(m.id, "my-llama");
  // Same architecture as Llama-3 8B, so the same parameter count.
  EXPECT_DOUBLE_EQ(parameter_count(m), parameter_count(cat().model("llama3-8b")));
  std::ofstream(dir / "bad.json") << R"({"model_type": "mamba"})";
  EXPECT_THROW(model_from_hf_config((dir / "bad.json").string()), BadInput);
  // Every family meets the same shape rules, parallel-block ones included.
  std::ofstream(dir / "falcon.json") << R"({"model_type": "falcon", "hidden_size": 14848,
    "num_attention_heads": 232, "num_hidden_layers": 80, "num_kv_heads": 7,
    "new_decoder_architecture": true, "vocab_size": 65024})";
  try {
    model_from_hf_config((dir / "falcon.json").string());
    ADD_FAILURE() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("divide heads (232), got 7"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "gptj.json") << R"({"model_type": "gptj", "n_layer": 2, "n_embd": 8, "n_head": 16,
    "vocab_size": 100})";
  EXPECT_THROW(model_from_hf_config((dir / "gptj.json").string()), BadInput);
  // Shapes are whole counts, and without head_dim the hidden size must split evenly over the heads.
  const auto error_of = [&](const std::string& name, const std::string& json) -> std::string {
    std::ofstream(dir / name) << json;
    try {
      model_from_hf_config((dir / name).string());
    } catch (const BadInput& e) {
      return e.what();
    }
    return "";
  };
  const std::string llama = R"("model_type": "llama", "num_attention_heads": 32, "intermediate_size": 14336,
    "vocab_size": 128256)";
  EXPECT_NE(error_of("uneven.json", "{" + llama + R"(, "hidden_size": 4097, "num_hidden_layers": 32})")
                .find("does not split evenly over 32 attention heads"),
            std::string::npos);
  EXPECT_NE(error_of("fraction.json", "{" + llama + R"(, "hidden_size": 4096, "num_hidden_layers": 2.5})")
                .find("'num_hidden_layers' must be a whole number"),
            std::string::npos);
  EXPECT_NE(error_of("huge.json", "{" + llama + R"(, "hidden_size": 4096, "num_hidden_layers": 1e20})")
                .find("'num_hidden_layers' must be a whole number"),
            std::string::npos);
  // An explicit head_dim may differ from hidden / heads (Gemma 7B: 16 heads x 256 = 4096 != 3072).
  EXPECT_EQ(error_of("explicit.json", "{" + llama + R"(, "hidden_size": 4097, "num_hidden_layers": 32,
    "head_dim": 128})"), "");
}

TEST(Catalog, UserDirectoryAddsAndReplacesEntries) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mlsysim_test_user_catalog";
  fs::create_directories(dir);
  std::ofstream(dir / "mine.toml") << R"(
[[device]]
id = "my-npu"
name = "My NPU"
tier = "edge"
kind = "npu"
[device.dense_tflops]
int8 = 10
[device.memory]
capacity_gib = 4
bandwidth_gbs = 50
[device.power]
tdp_w = 5
[device.sources]
compute = "vendor sheet"
memory = "vendor sheet"
power = "vendor sheet"
)";
  const Catalog c = Catalog::with_user_dir(dir.string());
  const auto& npu = c.hardware("my_npu");
  EXPECT_DOUBLE_EQ(npu.memory_capacity.si(), 4.0 * 1024 * 1024 * 1024);
  EXPECT_EQ(c.all_hardware().size(), cat().all_hardware().size() + 1);
  EXPECT_THROW(Catalog::with_user_dir((dir / "missing").string()), BadInput);
}

TEST(Catalog, MalformedTomlNamesFileAndLine) {
  Catalog c;
  try {
    c.add_toml("[[device]]\nid = \"x\"\nname = \n", "broken.toml");
    FAIL();
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("broken.toml:3"), std::string::npos) << e.what();
  }
  try {
    c.add_toml("[[device]]\nid = \"x\"\n[device.dense_tflops]\nbf16 = 1\n", "nomem.toml");
    FAIL();
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("memory"), std::string::npos) << e.what();
  }
}

TEST(Catalog, ModelShapesAreWholePositiveCounts) {
  // A fractional or negative count is refused with its field name, and every layer needs an MLP
  // and at least one KV head (a model with ffn = 0 or kv_heads = 0 used to solve).
  const std::string head = "[[model]]\nid = \"m\"\nname = \"M\"\nkind = \"decoder\"\nlayers = 2\nhidden = 64\n"
                           "heads = 4\nvocab = 100\nsource = \"x\"\n";
  Catalog ok;
  ok.add_toml(head + "kv_heads = 2\nffn = 128\n", "ok.toml");
  EXPECT_EQ(ok.model("m").tf.ffn, 128);
  for (const auto& [fields, needle] : std::vector<std::pair<std::string, std::string>>{
           {"kv_heads = 2\nffn = 2.5\n", "'ffn' must be a whole number"},
           {"kv_heads = 2\nffn = -5\n", "'ffn' must be a whole number"},
           {"kv_heads = 2\nffn = 0\n", "MLP width must be >= 1"},
           {"kv_heads = 0\nffn = 128\n", "must be >= 1 and divide heads (4), got 0"},
           {"kv_heads = 3\nffn = 128\n", "divide heads (4)"}}) {
    Catalog c;
    try {
      c.add_toml(head + fields, "m.toml");
      ADD_FAILURE() << "expected BadInput for " << fields;
    } catch (const BadInput& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("m.toml"), std::string::npos) << e.what();
    }
  }
}

TEST(Catalog, DropoutIsAProbability) {
  EXPECT_DOUBLE_EQ(cat().model("gpt2").tf.train_dropout, 0.1);  // GPT2Config resid_pdrop
  EXPECT_DOUBLE_EQ(cat().model("llama3-8b").tf.train_dropout, 0.0);
  Catalog c;
  try {
    c.add_toml("[[model]]\nid = \"m\"\nname = \"M\"\nkind = \"decoder\"\nlayers = 2\nhidden = 64\n"
               "heads = 4\nffn = 256\nvocab = 100\ntrain_dropout = 1.5\n",
               "drop.toml");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("train_dropout"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[0, 1)"), std::string::npos) << e.what();
  }
}

TEST(Catalog, HuggingFaceConfigsOfOtherFamiliesMatchTheCatalog) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mlsysim_test_hf_families";
  fs::create_directories(dir);
  struct Case { const char* file; const char* json; const char* catalog_id; };
  const Case cases[] = {
      {"mixtral.json", R"({"model_type": "mixtral", "hidden_size": 4096, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
        "vocab_size": 32000, "max_position_embeddings": 32768, "num_local_experts": 8,
        "num_experts_per_tok": 2, "tie_word_embeddings": false, "hidden_act": "silu"})",
       "mixtral-8x7b"},
      {"qwen.json", R"({"model_type": "qwen2", "hidden_size": 8192, "num_hidden_layers": 80,
        "num_attention_heads": 64, "num_key_value_heads": 8, "intermediate_size": 29568,
        "vocab_size": 152064, "max_position_embeddings": 32768, "tie_word_embeddings": false,
        "hidden_act": "silu"})",
       "qwen2.5-72b"},
      {"gemma2.json", R"({"model_type": "gemma2", "hidden_size": 3584, "num_hidden_layers": 42,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
        "intermediate_size": 14336, "vocab_size": 256000, "max_position_embeddings": 8192,
        "hidden_activation": "gelu_pytorch_tanh", "sliding_window": 4096})",
       "gemma2-9b"},
      // Parallel-block families: GPTJConfig and FalconConfig key names.
      {"gptj.json", R"({"model_type": "gptj", "n_layer": 28, "n_embd": 4096, "n_head": 16,
        "rotary_dim": 64, "n_inner": null, "activation_function": "gelu_new", "vocab_size": 50400,
        "n_positions": 2048, "tie_word_embeddings": false})",
       "gpt-j-6b"},
      {"falcon.json", R"({"model_type": "falcon", "hidden_size": 14848, "num_attention_heads": 232,
        "num_hidden_layers": 80, "num_kv_heads": 8, "new_decoder_architecture": true,
        "parallel_attn": true, "bias": false, "vocab_size": 65024, "alibi": false})",
       "falcon-180b"},
      // Qwen3: head_dim given, no q/k/v biases, an RMSNorm weight for q and one for k per layer.
      {"qwen3.json", R"({"model_type": "qwen3", "hidden_size": 4096, "num_hidden_layers": 36,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 12288,
        "vocab_size": 151936, "max_position_embeddings": 40960, "tie_word_embeddings": false,
        "attention_bias": false, "hidden_act": "silu", "sliding_window": null, "use_sliding_window": false})",
       "qwen3-8b"},
      {"qwen3_moe.json", R"({"model_type": "qwen3_moe", "hidden_size": 2048, "num_hidden_layers": 48,
        "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 6144,
        "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8, "decoder_sparse_step": 1,
        "mlp_only_layers": [], "vocab_size": 151936, "max_position_embeddings": 40960,
        "tie_word_embeddings": false, "hidden_act": "silu"})",
       "qwen3-30b-a3b"},
  };
  for (const auto& c : cases) {
    std::ofstream(dir / c.file) << c.json;
    const ModelSpec m = model_from_hf_config((dir / c.file).string());
    EXPECT_DOUBLE_EQ(parameter_count(m), parameter_count(cat().model(c.catalog_id))) << c.file;
  }
  // A Qwen3 MoE layout with dense layers is refused, not modelled as all-MoE.
  std::ofstream(dir / "qwen3_moe_dense.json") << R"({"model_type": "qwen3_moe", "hidden_size": 2048,
    "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
    "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
    "mlp_only_layers": [0, 1], "vocab_size": 151936})";
  try {
    model_from_hf_config((dir / "qwen3_moe_dense.json").string());
    ADD_FAILURE() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("mlp_only_layers"), std::string::npos) << e.what();
  }
}

// Qwen3's safetensors totals, to the parameter: the count includes each layer's q_norm and k_norm
// weights (2 x head_dim), without which every model would be 256 x layers short.
TEST(Catalog, Qwen3ParameterCountsAreExact) {
  for (const auto& [id, published] : std::vector<std::pair<const char*, double>>{
           {"qwen3-8b", 8190735360.0}, {"qwen3-14b", 14768307200.0}, {"qwen3-32b", 32762123264.0},
           {"qwen3-30b-a3b", 30532122624.0}})
    EXPECT_DOUBLE_EQ(parameter_count(cat().model(id)), published) << id;
}

// The MI300X has no microbenchmark of ours: its rates are published ones over its datasheet (AMD's
// cold-cache hipBLASLt ceilings BF16 708 and FP8 1273 TFLOP/s against 1307.4 and 2614.9 dense;
// BabelStream Triad ~4.095 TB/s against 5.3 TB/s); what that partial calibration leaves out (INT8
// GEMMs, launch costs) keeps the default for a GPU.
TEST(Catalog, PublishedMicrobenchmarksCalibrateAnUnmeasuredDevice) {
  const auto& mi300x = cat().hardware("mi300x");
  EXPECT_NEAR(mi300x.efficiency.gemm[index_of(Precision::BF16)], 708.0 / 1307.4, 1e-4);
  EXPECT_NEAR(mi300x.efficiency.gemm[index_of(Precision::FP8)], 1273.0 / 2614.9, 1e-4);
  EXPECT_NEAR(mi300x.efficiency.memory, 4.095 / 5.3, 1e-4);
  EXPECT_DOUBLE_EQ(mi300x.efficiency.gemm[index_of(Precision::INT8)], 0.75);
  // Achieved FP8 is below twice achieved BF16, as on the Hopper devices we measured.
  EXPECT_LT(mi300x.efficiency.gemm[index_of(Precision::FP8)] * mi300x.peak(Precision::FP8).si(),
            2 * mi300x.efficiency.gemm[index_of(Precision::BF16)] * mi300x.peak(Precision::BF16).si());
  // The A100's published MAMF ceiling (267.9 / 312 = 0.86) is above the default, so the default stands.
  EXPECT_DOUBLE_EQ(cat().hardware("a100-80gb").efficiency.gemm[index_of(Precision::BF16)], 0.75);
}

// Power-limited boards from a published torch.mm benchmark: the median of the rows of 8192 and more
// per edge over the dense peak (L4 BF16 59.40 and 56.90 of 121 TFLOP/s; H100 PCIe 492.84 and 471.79
// of 756.5), below the default; FP8, which the benchmark does not time, keeps it. And a lower power
// limit on the same Hopper die never buys a higher 16-bit rate than the SXM part's fit.
TEST(Catalog, PublishedTorchMatmulRowsCalibrateThePowerLimitedBoards) {
  const auto& l4 = cat().hardware("l4");
  const auto& pcie = cat().hardware("h100-pcie");
  EXPECT_NEAR(l4.efficiency.gemm[index_of(Precision::BF16)], (59.40 + 56.90) / 2 / 121, 1e-4);
  EXPECT_NEAR(pcie.efficiency.gemm[index_of(Precision::BF16)], (492.84 + 471.79) / 2 / 756.5, 1e-4);
  EXPECT_DOUBLE_EQ(l4.efficiency.gemm[index_of(Precision::FP8)], 0.75);
  EXPECT_DOUBLE_EQ(pcie.efficiency.gemm[index_of(Precision::FP8)], 0.75);
  EXPECT_LT(pcie.efficiency.gemm[index_of(Precision::BF16)] * pcie.peak(Precision::BF16).si(),
            cat().hardware("h100").efficiency.gemm[index_of(Precision::BF16)] * cat().hardware("h100").peak(Precision::BF16).si());
  // GeForce boards run above the whitepapers' boost clocks: the RTX 4090 reaches 0.965 of its
  // FP32-accumulate peak, and the RTX 5090's 235 TFLOP/s is above its 209.5, capped at 1.
  EXPECT_NEAR(cat().hardware("rtx-4090").efficiency.gemm[index_of(Precision::BF16)], (160.17 + 158.54) / 2 / 165.2, 1e-4);
  EXPECT_DOUBLE_EQ(cat().hardware("rtx-5090").efficiency.gemm[index_of(Precision::BF16)], 1.0);
  // The T4's rows give only the best size, an upper bound: min(default, best / peak).
  EXPECT_NEAR(cat().hardware("t4").efficiency.gemm[index_of(Precision::FP16)], 42.71 / 65, 1e-4);
  // So do the L40S's (BF16 269.15 of 362.05, FP32 46.88 of 91.6); the B200's BF16 best (1696.03 of 2250)
  // is above the default, which stands, while its FP16 best (1627.64) is below it.
  const auto& l40s = cat().hardware("l40s");
  EXPECT_NEAR(l40s.efficiency.gemm[index_of(Precision::BF16)], 269.15 / 362.05, 1e-4);
  EXPECT_NEAR(l40s.efficiency.gemm[index_of(Precision::FP32)], 46.88 / 91.6, 1e-4);
  EXPECT_DOUBLE_EQ(l40s.efficiency.gemm[index_of(Precision::FP8)], 0.75);
  EXPECT_DOUBLE_EQ(cat().hardware("b200").efficiency.gemm[index_of(Precision::BF16)], 0.75);
  EXPECT_NEAR(cat().hardware("b200").efficiency.gemm[index_of(Precision::FP16)], 1627.64 / 2250, 1e-4);
}

TEST(Catalog, CalibrationEfficienciesAreFractionsOfPeak) {
  Catalog c = cat();
  try {
    c.add_toml("[[calibration]]\ndevice = \"h100\"\n[calibration.gemm_efficiency]\nbf16 = 1.3\n", "cal.toml");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("gemm_efficiency.bf16"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(0, 1]"), std::string::npos) << e.what();
  }
  try {
    c.add_toml("[[calibration]]\ndevice = \"h100\"\nmemory_efficiency = 0\n", "cal.toml");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("memory_efficiency"), std::string::npos) << e.what();
  }
  // Every efficiency field is checked the same way, and times (launch gaps, host costs) cannot be
  // negative: a -4 us launch gap used to subtract 1.3 ms from a decode step.
  for (const char* line : {"conv_efficiency = 2", "vector_memory_efficiency = 0", "attention_efficiency = -1",
                           "strided_memory_efficiency = 1.1", "kernel_overhead_us = -4", "host_dispatch_us = nan",
                           "isolated_call_us = inf", "conv_host_dispatch_us = -1", "attention_tail = -0.5",
                           "power_idle_fraction = 1.5", "power_memory_fraction = 0", "power_compute_fraction = -0.2",
                           "sustained_gemm_efficiency = 1.2", "sustained_gemm_efficiency = 0"}) {
    Catalog d = cat();
    try {
      d.add_toml(std::string("[[calibration]]\ndevice = \"h100\"\n") + line + "\n", "cal.toml");
      ADD_FAILURE() << "expected BadInput for " << line;
    } catch (const BadInput& e) {
      const std::string key = std::string(line).substr(0, std::string(line).find(' '));
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

TEST(Catalog, FlashAttention2RateIsAFractionAndAPartialEntryKeepsTheMainSource) {
  Catalog c = cat();
  EXPECT_THROW(c.add_toml("[[calibration]]\ndevice = \"h100\"\nflash_attention2_efficiency = 1.5\n", "cal.toml"),
               BadInput);
  const std::string main_source = c.hardware("h100").efficiency.source;
  c.add_toml("[[calibration]]\ndevice = \"h100\"\nflash_attention2_efficiency = 0.4\n"
             "flash_attention2_source = \"my FA2 timings\"\n", "fa2.toml");
  const auto& e = c.hardware("h100").efficiency;
  EXPECT_DOUBLE_EQ(e.flash_attention2, 0.4);
  EXPECT_EQ(e.flash_attention2_source, "my FA2 timings");
  EXPECT_EQ(e.source, main_source);  // no "source" key: the device's own calibration still cites itself
}

TEST(Catalog, HeadDimRatesAreSortedAndBadOnesRejected) {
  Catalog c = cat();
  const std::string head = "[[calibration]]\ndevice = \"h100\"\nattention_head_dim_source = \"mine\"\n";
  try {
    c.add_toml(head + "[[calibration.attention_head_dim_rate]]\nhead_dim = 64\nrelative_rate = 0\n", "cal.toml");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("relative_rate in (0, 2]"), std::string::npos) << e.what();
  }
  c.add_toml(head + "[[calibration.attention_head_dim_rate]]\nhead_dim = 256\nrelative_rate = 0.9\n"
                    "[[calibration.attention_head_dim_rate]]\nhead_dim = 64\nrelative_rate = 0.5\n",
             "cal.toml");
  EXPECT_THROW(c.add_toml(head + "[[calibration.attention_head_dim_rate]]\npass = \"sideways\"\nhead_dim = 64\n"
                                 "relative_rate = 0.5\n", "cal.toml"),
               BadInput);
  const auto& e = c.hardware("h100").efficiency;
  ASSERT_EQ(e.attention_head_dim_rates.size(), 2u);  // replaces the built-in table
  EXPECT_TRUE(e.attention_backward_head_dim_rates.empty());  // and the backward one
  EXPECT_DOUBLE_EQ(e.attention_head_dim_rates.front().head_dim, 64);
  EXPECT_EQ(e.attention_head_dim_source, "mine");
}

TEST(Catalog, SpecialFunctionRateMustBeCited) {
  Catalog c = cat();
  const std::string device =
      "[[device]]\nid = \"sfu-test\"\nname = \"SFU test\"\nspecial_function_tops = 2.0\n"
      "[device.dense_tflops]\nbf16 = 100\n[device.memory]\ncapacity_gb = 16\nbandwidth_gbs = 1000\n"
      "[device.sources]\ncompute = \"x\"\nmemory = \"y\"\n";
  try {
    c.add_toml(device, "sfu.toml");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("special_function"), std::string::npos) << e.what();
  }
  c.add_toml(device + "special_function = \"a datasheet\"\n", "sfu.toml");
  EXPECT_DOUBLE_EQ(c.hardware("sfu-test").special_function_rate.si(), 2.0e12);
}

TEST(Catalog, UsableMemoryIsCitedAndBoundedByTheDatasheet) {
  // HBM is sold in binary units: the H100's "80 GB" shows 79.19 GiB to CUDA, 85.03e9 bytes.
  EXPECT_DOUBLE_EQ(cat().hardware("h100").memory_usable.si(), 79.19 * 1024 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(cat().hardware("h100").memory_capacity.si(), 80e9);
  for (const auto& hw : cat().all_hardware()) {
    EXPECT_GT(hw.memory_usable.si(), 0) << hw.id;
    // Never more than the label read as binary units: the driver only takes memory away.
    EXPECT_LE(hw.memory_usable.si(), hw.memory_capacity.si() / 1e9 * 1024 * 1024 * 1024) << hw.id;
    if (hw.memory_usable != hw.memory_capacity) EXPECT_TRUE(hw.sources.count("usable_memory")) << hw.id;
  }
  Catalog c = cat();
  const std::string device =
      "[[device]]\nid = \"usable-test\"\nname = \"Usable test\"\n[device.dense_tflops]\nbf16 = 100\n"
      "[device.memory]\ncapacity_gb = 16\nbandwidth_gbs = 1000\nusable_gib = 14.5\n"
      "[device.sources]\ncompute = \"x\"\nmemory = \"y\"\n";
  EXPECT_THROW(c.add_toml(device, "usable.toml"), BadInput);  // no 'usable_memory' citation
  c.add_toml(device + "usable_memory = \"a driver log\"\n", "usable.toml");
  EXPECT_DOUBLE_EQ(c.hardware("usable-test").memory_usable.si(), 14.5 * 1024 * 1024 * 1024);
  std::string too_big = device + "usable_memory = \"a driver log\"\n";
  too_big.replace(too_big.find("14.5"), 4, "40.0");
  EXPECT_THROW(c.add_toml(too_big, "usable.toml"), BadInput);
  // A zero memory rate would make every step infinitely long (NaN shares), a zero TDP every joule
  // vanish, a zero or negative capacity hold nothing: each is refused with the field's name.
  const std::string valid = device + "usable_memory = \"a driver log\"\npower = \"z\"\n[device.power]\ntdp_w = 70\n";
  Catalog fresh = cat();  // c already defines usable-test: a second definition would be a duplicate id
  fresh.add_toml(valid, "usable.toml");
  for (const auto& [from, to, field] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"bandwidth_gbs = 1000", "bandwidth_gbs = 0", "bandwidth_gbs"},
           {"tdp_w = 70", "tdp_w = 0", "tdp_w"},
           {"capacity_gb = 16", "capacity_gb = -16", "capacity_gb"},
           {"capacity_gb = 16", "capacity_gb = 0", "capacity must be > 0"}}) {
    std::string bad = valid;
    bad.replace(bad.find(from), from.size(), to);
    try {
      c.add_toml(bad, "bad.toml");
      ADD_FAILURE() << "expected BadInput for " << to;
    } catch (const BadInput& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  }
}

// ---- What a user's --catalog files and config.json files may not say ----------------------------

namespace {

using mlsysim::testing::expect_each_refused;
using mlsysim::testing::mentions;
using mlsysim::testing::RefusedInput;
using mlsysim::testing::with;

// The BadInput message of adding `toml` to a copy of the built-in catalog, or "" when it is accepted.
std::string toml_error(const std::string& toml) {
  return mlsysim::testing::bad_input_of([&] {
    Catalog c = Catalog::builtin();
    c.add_toml(toml, "user.toml");
  });
}

// A small valid decoder (4 heads of 16) and a small valid NPU; the tests change one thing at a time.
const std::string kModel =
    "[[model]]\nid = \"tiny-lm\"\nkind = \"decoder\"\nlayers = 2\nhidden = 64\nheads = 4\n"
    "ffn = 256\nvocab = 1000\n";
const std::string kDevice =
    "[[device]]\nid = \"my-npu\"\nkind = \"npu\"\ncompute_units = 4\n"
    "[device.dense_tflops]\nint8 = 10\n[device.memory]\ncapacity_gib = 4\nbandwidth_gbs = 50\n"
    "[device.sources]\ncompute = \"sheet\"\nmemory = \"sheet\"\n";

namespace fs = std::filesystem;

// A fresh directory under the system temp directory.
fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string hf_error(const fs::path& file, const std::string& json) {
  std::ofstream(file) << json;
  try {
    model_from_hf_config(file.string());
  } catch (const BadInput& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CatalogInput, TheTestEntriesAreValid) {
  EXPECT_EQ(toml_error(kModel), "");
  EXPECT_EQ(toml_error(kDevice), "");
}

// Every [[device]] and [[model]] table of the embedded files is accepted: none is refused by a rule
// (the catalog would not load) and none is dropped or merged with another (the counts match).
TEST(CatalogInput, EveryBuiltInEntryLoads) {
  size_t devices = 0, models = 0;
  for (size_t i = 0; i < kEmbeddedCatalogCount; ++i) {
    std::istringstream lines(kEmbeddedCatalog[i].text);
    for (std::string line; std::getline(lines, line);) {
      devices += line == "[[device]]";
      models += line == "[[model]]";
    }
  }
  EXPECT_EQ(cat().all_hardware().size(), devices);
  EXPECT_EQ(cat().all_models().size(), models);
  // Each id and alias names exactly one entry.
  std::set<std::string> hardware_names, model_names;
  for (const auto& hw : cat().all_hardware()) {
    EXPECT_TRUE(hardware_names.insert(normalize_name(hw.id)).second) << hw.id;
    for (const auto& a : hw.aliases) {
      EXPECT_TRUE(hardware_names.insert(normalize_name(a)).second) << a;
      EXPECT_EQ(cat().hardware(a).id, hw.id) << a;
    }
  }
  for (const auto& m : cat().all_models()) {
    EXPECT_TRUE(model_names.insert(normalize_name(m.id)).second) << m.id;
    for (const auto& a : m.aliases) EXPECT_TRUE(model_names.insert(normalize_name(a)).second) << a;
  }
}

// 512 over 7 heads is 73.14 dimensions each: refused without head_dim, in a catalog entry as in a
// config.json, rather than truncated to 73.
TEST(CatalogInput, HiddenMustSplitOverTheHeadsUnlessHeadDimIsGiven) {
  const std::string uneven = with(with(kModel, "hidden = 64", "hidden = 512"), "heads = 4", "heads = 7");
  const std::string error = toml_error(uneven);
  EXPECT_TRUE(mentions(error, "user.toml [tiny-lm]")) << error;
  EXPECT_TRUE(mentions(error, "hidden size 512 does not split evenly over 7 attention heads")) << error;
  EXPECT_TRUE(mentions(error, "give 'head_dim'")) << error;
  Catalog c = cat();
  c.add_toml(with(uneven, "heads = 7", "heads = 7\nhead_dim = 64\nkv_heads = 7"), "user.toml");
  EXPECT_EQ(c.model("tiny-lm").tf.head_dim, 64);  // an explicit head_dim may differ from hidden / heads
  Catalog even = cat();
  even.add_toml(with(kModel, "hidden = 64", "hidden = 512"), "user.toml");
  EXPECT_EQ(even.model("tiny-lm").tf.head_dim, 128);  // 512 / 4
  const fs::path dir = fresh_dir("mlsysim_test_uneven_heads");
  EXPECT_TRUE(mentions(hf_error(dir / "config.json", R"({"model_type": "llama", "hidden_size": 512,
    "num_hidden_layers": 2, "num_attention_heads": 7, "intermediate_size": 1024, "vocab_size": 100})"),
                       "does not split evenly over 7 attention heads"));
}

// A decoder's embedding and LM head have one row per token; so does BERT's embedding. ViT embeds
// 16x16 patches instead, and has no vocabulary.
TEST(CatalogInput, ModelsThatEmbedTokensNeedAVocabulary) {
  const std::string decoder = toml_error(with(kModel, "vocab = 1000", "vocab = 0"));
  EXPECT_TRUE(mentions(decoder, "vocab")) << decoder;
  EXPECT_TRUE(mentions(decoder, "must be >= 1 for a decoder model")) << decoder;
  EXPECT_TRUE(mentions(toml_error(with(kModel, "vocab = 1000\n", "")), "vocab"));  // absent is 0
  const std::string seq2seq = with(with(kModel, "kind = \"decoder\"", "kind = \"encoder-decoder\""), "layers = 2",
                                   "encoder_layers = 2\ndecoder_layers = 2");
  EXPECT_EQ(toml_error(seq2seq), "");
  EXPECT_TRUE(mentions(toml_error(with(seq2seq, "vocab = 1000", "vocab = 0")), "encoder-decoder model"));
  const std::string encoder = with(kModel, "kind = \"decoder\"", "kind = \"encoder\"");
  const std::string bert = toml_error(with(encoder, "vocab = 1000", "vocab = 0"));
  EXPECT_TRUE(mentions(bert, "an encoder model")) << bert;
  EXPECT_TRUE(mentions(bert, "patch_embed")) << bert;  // says how an encoder without tokens is written
  EXPECT_EQ(toml_error(with(encoder, "vocab = 1000", "vocab = 0\npatch_embed = [3, 16, 224]")), "");
  EXPECT_EQ(cat().model("vit-b16").tf.vocab, 0);
}

// Top-k routing sends each token to k of the routed experts: 1 <= k <= experts, and no k without
// experts. Mixtral 8x7B routes 2 of 8.
TEST(CatalogInput, ExpertsPerTokenFitTheExperts) {
  const std::string dense_with_k = toml_error(kModel + "experts_per_token = 2\n");
  EXPECT_TRUE(mentions(dense_with_k, "no routed experts")) << dense_with_k;
  const std::string too_many = toml_error(kModel + "experts = 4\nexperts_per_token = 5\n");
  EXPECT_TRUE(mentions(too_many, "must be in [1, 4]")) << too_many;
  EXPECT_TRUE(mentions(too_many, "got 5")) << too_many;
  EXPECT_TRUE(mentions(toml_error(kModel + "experts = 8\n"), "must be in [1, 8]"));
  EXPECT_EQ(toml_error(kModel + "experts = 8\nexperts_per_token = 2\n"), "");
  EXPECT_EQ(cat().model("mixtral-8x7b").tf.experts_per_token, 2);
  const fs::path dir = fresh_dir("mlsysim_test_expert_routing");
  const std::string llama = R"("model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100)";
  EXPECT_TRUE(mentions(hf_error(dir / "k.json", "{" + llama + R"(, "num_experts_per_tok": 2})"), "no routed experts"));
  EXPECT_TRUE(
      mentions(hf_error(dir / "big_k.json", "{" + llama + R"(, "num_local_experts": 4, "num_experts_per_tok": 8})"),
               "must be in [1, 4]"));
}

// A config whose dense prefix is longer than the model (first_k_dense_replace 64 of 32 layers) used
// to give a negative parameter count that "fit"; a head_dim or MLP width near 2^31 overflowed int
// arithmetic into negative bytes and times. Both are refused, with the ceiling.
TEST(CatalogInput, HfShapesThatOverflowedAreRefused) {
  const fs::path dir = fresh_dir("mlsysim_test_hf_overflow");
  const std::string mixtral = R"("model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100, "num_local_experts": 4,
    "num_experts_per_tok": 2)";
  EXPECT_TRUE(mentions(hf_error(dir / "fkd.json", "{" + mixtral + R"(, "first_k_dense_replace": 3})"),
                       "first_dense_layers (first_k_dense_replace in config.json) must be in [0, 2]"));
  EXPECT_EQ(hf_error(dir / "fkd_ok.json", "{" + mixtral + R"(, "first_k_dense_replace": 2})"), "");
  EXPECT_TRUE(mentions(hf_error(dir / "moe.json", "{" + mixtral + R"(, "moe_intermediate_size": 2147483647})"),
                       "moe_ffn must be at most 16777216"));
  const std::string llama = R"("model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100)";
  EXPECT_TRUE(mentions(hf_error(dir / "hd.json", "{" + llama + R"(, "head_dim": 2147483647})"),
                       "heads x head_dim must be at most 16777216"));
  EXPECT_EQ(hf_error(dir / "hd_ok.json", "{" + llama + R"(, "head_dim": 256})"), "");  // wider than hidden / heads
  // Broken JSON says where, in the parser's words, without the library's exception tag.
  const std::string broken = hf_error(dir / "broken.json", "{no");
  EXPECT_TRUE(mentions(broken, "broken.json: not valid JSON (parse error at line 1, column 3")) << broken;
  EXPECT_FALSE(mentions(broken, "[json.exception")) << broken;
}

// A measurement is a positive, finite number: `measured = inf` (valid TOML) used to print nan errors.
TEST(CatalogInput, ValidationPointsNeedAFiniteMeasurement) {
  const std::string point = R"([[point]]
id = "p"
category = "decode"
command = "solve --model llama3-8b --hardware h100"
metric = "latency_s"
source = "a test"
measured = )";
  const std::vector<RefusedInput> cases = {{"inf", "measured must be a positive, finite number"},
                                           {"0.0", "measured must be a positive, finite number"},
                                           {"-1.0", "measured must be a positive, finite number"}};
  expect_each_refused(cases, [&](const std::string& value) {
    const fs::path dir = fresh_dir("mlsysim_test_points");
    std::ofstream(dir / "p.toml") << point << value << "\n";
    return mlsysim::testing::bad_input_of([&] { load_validation_points(dir.string()); });
  });
  const fs::path dir = fresh_dir("mlsysim_test_points");
  std::ofstream(dir / "p.toml") << point << "0.0065\n";
  EXPECT_DOUBLE_EQ(load_validation_points(dir.string()).at(0).measured, 0.0065);
}

// Fields that take a word refuse any other word, listing the valid ones.
TEST(CatalogInput, WordFieldsListTheirValidValues) {
  const std::vector<RefusedInput> cases = {
      {with(kModel, "\"decoder\"", "\"quantum\""),
       "'kind' must be one of decoder | encoder | encoder-decoder | cnn | dlrm | opaque, got \"quantum\""},
      {with(kModel, "\"decoder\"", "\"decodr\""), "did you mean \"decoder\"?"},
      {kModel + "norm = \"batchnorm\"\n", "'norm' must be one of layernorm | rmsnorm"},
      {kModel + "pos = \"rotary\"\n", "'pos' must be one of rope | learned | alibi | sinusoidal | none"},
      {kModel + "ffn_act = \"mish\"\n", "'ffn_act' must be one of swiglu | silu | geglu | gelu | relu"},
      {with(kDevice, "\"npu\"", "\"fpga\""),
       "'kind' must be one of gpu | tpu | npu | cpu | mcu | wafer | lpu | accelerator"},
      {with(kDevice, "kind = \"npu\"", "tier = \"datacenter\""),
       "'tier' must be one of cloud | workstation | edge | mobile | tiny"},
      {with(kModel, "\"decoder\"", "3"), "'kind' must be a string, got 3"},
  };
  expect_each_refused(cases, toml_error);
  Catalog c = cat();
  c.add_toml(kModel + "norm = \"rmsnorm\"\nffn_act = \"silu\"\n", "user.toml");
  EXPECT_FALSE(c.model("tiny-lm").tf.layernorm);
  EXPECT_EQ(c.model("tiny-lm").tf.act, FfnActivation::SwiGLU);  // Hugging Face's name for the SwiGLU gate
}

// Ids and aliases name one entry each, compared ignoring case with '_' read as '-'.
TEST(CatalogInput, DuplicateNamesAreRefused) {
  const std::string twice = toml_error(kModel + kModel);
  EXPECT_TRUE(mentions(twice, "the id 'tiny-lm' is already the id of model 'tiny-lm' (user.toml)")) << twice;
  EXPECT_TRUE(
      mentions(toml_error(kDevice + with(kDevice, "\"my-npu\"", "\"My_NPU\"")), "already the id of hardware 'my-npu'"));
  const std::string alias_of_other =
      toml_error(kModel + with(kModel, "id = \"tiny-lm\"", "id = \"b\"\naliases = [\"Tiny_LM\"]"));
  EXPECT_TRUE(mentions(alias_of_other, "user.toml [b]: the alias 'Tiny_LM' is already the id of model 'tiny-lm'"))
      << alias_of_other;
  // A user alias may not take a built-in name, nor a user id a built-in alias (h100-sxm is the H100's).
  const std::string builtin_id =
      toml_error(with(kModel, "id = \"tiny-lm\"", "id = \"tiny-lm\"\naliases = [\"llama3-8b\"]"));
  EXPECT_TRUE(mentions(builtin_id, "already the id of built-in model 'llama3-8b' (catalog/models/")) << builtin_id;
  const std::string builtin_alias = toml_error(with(kDevice, "\"my-npu\"", "\"h100-sxm\""));
  EXPECT_TRUE(mentions(builtin_alias, "already an alias of built-in hardware 'h100'")) << builtin_alias;
  EXPECT_TRUE(mentions(builtin_alias, "give the entry the id 'h100' to replace that built-in hardware"))
      << builtin_alias;
  // Across the files of one --catalog directory, both files are named.
  const fs::path dir = fresh_dir("mlsysim_test_duplicate_ids");
  std::ofstream(dir / "a.toml") << kDevice;
  std::ofstream(dir / "b.toml") << kDevice;
  try {
    (void)Catalog::with_user_dir(dir.string());
    ADD_FAILURE() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_TRUE(mentions(e.what(), (dir / "a.toml").string())) << e.what();
    EXPECT_TRUE(mentions(e.what(), (dir / "b.toml").string())) << e.what();
  }
}

// A --catalog entry with a built-in id replaces the built-in entry (docs/CATALOG.md): the
// replacement's numbers answer to the built-in's id and aliases, and the catalog does not grow.
TEST(CatalogInput, AUserEntryWithABuiltInIdReplacesIt) {
  const fs::path dir = fresh_dir("mlsysim_test_override");
  std::ofstream(dir / "h100.toml") << with(with(kDevice, "\"my-npu\"", "\"h100\""), "bandwidth_gbs = 50",
                                           "bandwidth_gbs = 1000");
  const Catalog c = Catalog::with_user_dir(dir.string());
  EXPECT_EQ(c.all_hardware().size(), cat().all_hardware().size());
  EXPECT_NEAR(in_gbps(c.hardware("h100").memory_bandwidth), 1000, 1e-9);
  EXPECT_NEAR(in_gbps(c.hardware("h100-sxm").memory_bandwidth), 1000, 1e-9);  // a built-in alias
  EXPECT_NEAR(in_gbps(cat().hardware("h100").memory_bandwidth), 3350, 1e-9);  // the built-in is untouched
  // Only once: a second user definition of the id is ambiguous.
  std::ofstream(dir / "h100_again.toml") << with(kDevice, "\"my-npu\"", "\"H100\"");
  EXPECT_THROW((void)Catalog::with_user_dir(dir.string()), BadInput);
}

// Peaks and bandwidths are divided by: each must be a number > 0, within a documented plausible
// range (a unit slip, bandwidth in B/s written as GB/s, is far outside it).
TEST(CatalogInput, DeviceRatesArePositivePlausibleNumbers) {
  for (const std::string value : {"nan", "0", "-1", "\"fast\"", "inf"}) {
    const std::string error = toml_error(with(kDevice, "int8 = 10", "bf16 = " + value));
    EXPECT_TRUE(mentions(error, "user.toml [my-npu]: 'bf16' in [device.dense_tflops] must be a number > 0 TFLOP/s"))
        << value << ": " << error;
    const std::string bw = toml_error(with(kDevice, "bandwidth_gbs = 50", "bandwidth_gbs = " + value));
    EXPECT_TRUE(mentions(bw, "'bandwidth_gbs' must be a number > 0 GB/s")) << value << ": " << bw;
  }
  EXPECT_TRUE(
      mentions(toml_error(with(kDevice, "int8 = 10", "bf16 = 1e-30")), "plausible range [1e-07, 1e+07] TFLOP/s"));
  EXPECT_TRUE(mentions(toml_error(with(kDevice, "bandwidth_gbs = 50", "bandwidth_gbs = 1e-30")),
                       "plausible range [0.001, 1e+08] GB/s"));
  EXPECT_TRUE(mentions(toml_error(with(kDevice, "bandwidth_gbs = 50", "bandwidth_gbs = 3.35e12")),  // H100 in B/s
                       "plausible range"));
  EXPECT_TRUE(mentions(toml_error(kDevice + "[device.interconnect]\nper_direction_gbs = 0\n"), "'per_direction_gbs'"));
  // The range holds the extremes of the catalog: Cerebras WSE-3 streams its SRAM at 21 PB/s.
  EXPECT_NEAR(in_gbps(cat().hardware("cerebras-wse3").memory_bandwidth), 21e6, 1);
  // compute_units: 0 means unknown (GEMMs are then not wave-quantized); negative is refused.
  const std::string negative = toml_error(with(kDevice, "compute_units = 4", "compute_units = -4"));
  EXPECT_TRUE(mentions(negative, "'compute_units' must be a whole number >= 0, got -4")) << negative;
  Catalog c = cat();
  c.add_toml(with(kDevice, "compute_units = 4", "compute_units = 0"), "user.toml");
  EXPECT_EQ(c.hardware("my-npu").compute_units, 0);
  // The same precision twice (int8 and INT8 both parse as int8) would let the last one win.
  EXPECT_TRUE(mentions(toml_error(with(kDevice, "int8 = 10", "int8 = 10\nINT8 = 20")), "gives int8 twice"));
}

// [device.rental] is one device-hour's on-demand price, cited like every other number; a link's
// `gpus` (how many devices it joins) is a whole number of at least 2.
TEST(CatalogInput, RentalAndLinkReachAreCheckedAndCited) {
  const std::string cited = with(kDevice, "memory = \"sheet\"\n", "memory = \"sheet\"\nrental = \"price list\"\n");
  Catalog c = cat();
  c.add_toml(cited + "[device.rental]\nusd_per_hour = 1.5\nnote = \"a cloud\"\n", "user.toml");
  EXPECT_DOUBLE_EQ(c.hardware("my-npu").rental_rate->si(), 1.5 / 3600);
  for (const std::string value : {"0", "-2", "5000", "1e5", "nan"})  // 5000: a node's price, above kMostDeviceHourUsd
    EXPECT_TRUE(mentions(toml_error(cited + "[device.rental]\nusd_per_hour = " + value + "\n"), "usd_per_hour"))
        << value;
  EXPECT_TRUE(mentions(toml_error(kDevice + "[device.rental]\nusd_per_hour = 1.5\n"), "[device.sources] rental"));
  const std::string link = kDevice + "[device.interconnect]\nname = \"bridge\"\nper_direction_gbs = 50\ngpus = ";
  EXPECT_EQ(toml_error(link + "2\n"), "");
  for (const std::string value : {"1", "2.5", "-2"})
    EXPECT_TRUE(mentions(toml_error(link + value + "\n"), "'gpus'")) << value;
  EXPECT_TRUE(mentions(toml_error(link + "2\np2p = 0\n"), "'p2p' must be true or false"));
}

// A key the loader does not read is refused with the closest one it does, instead of leaving the
// field at its default.
TEST(CatalogInput, UnknownKeysAreRefusedWithTheClosestKnownKey) {
  const std::vector<RefusedInput> cases = {
      {with(kDevice, "bandwidth_gbs", "bandwith_gbs"),
       "user.toml [my-npu]: unknown key 'bandwith_gbs' in [device.memory]: did you mean 'bandwidth_gbs'?"},
      {with(kModel, "layers", "num_layers"), "unknown key 'num_layers' in [[model]]: did you mean 'layers'?"},
      {kModel + "hidden_size = 64\n", "did you mean 'hidden'?"},  // the config.json name
      {with(kDevice, "compute_units = 4", "tdp_w = 5"),
       "unknown key 'tdp_w' in [[device]]: it belongs in [device.power]"},
      {kDevice + "[device.power]\ntdp = 5\n", "unknown key 'tdp' in [device.power]: did you mean 'tdp_w'?"},
      {kModel + "zzz = 1\n", "unknown key 'zzz' in [[model]] (known keys: id, name"},
      {"[[model]]\nid = \"c\"\nkind = \"cnn\"\nhidden = 64\nlayers = [[\"fc\", 4, 2]]\n",
       "'hidden' in [[model]]: it is not read for a cnn model"},
      {"[[model]]\nid = \"d\"\nkind = \"dlrm\"\n[model.dlrm]\nrows_per_table = 10\nembedding_dims = 4\n",
       "unknown key 'embedding_dims' in [model.dlrm]: did you mean 'embedding_dim'?"},
      {"[device]\nid = \"x\"\n", "write each entry under [[device]]"},
  };
  expect_each_refused(cases, toml_error);
}

// A value of the wrong type is refused, not read as the field's default.
TEST(CatalogInput, FieldsOfTheWrongTypeAreRefused) {
  EXPECT_TRUE(mentions(toml_error(kModel + "tied_embeddings = \"yes\"\n"), "'tied_embeddings' must be true or false"));
  EXPECT_TRUE(mentions(toml_error(kModel + "aliases = [\"t\", 3]\n"), "'aliases' must hold only strings"));
  EXPECT_TRUE(mentions(toml_error(kModel + "vocab_size = 3\n"), "did you mean 'vocab'?"));
  EXPECT_TRUE(mentions(toml_error(with(kModel, "vocab = 1000", "vocab = 2.5")), "'vocab' must be a whole number"));
  EXPECT_TRUE(mentions(toml_error(with(kModel, "kind = \"decoder\"", "kind = \"encoder\"\npatch_embed = [3, 16]")),
                       "patch_embed is [in_channels, patch, image_size]"));
  EXPECT_TRUE(mentions(toml_error(kModel + "published_params = \"8B\"\n"), "'published_params' must be a number"));
}

// config.json values the engine cannot model are refused, naming the file the user gave.
TEST(CatalogInput, HuggingFaceConfigsAreCheckedLikeCatalogEntries) {
  const fs::path dir = fresh_dir("mlsysim_test_hf_input");
  const fs::path file = dir / "config.json";
  const std::string llama = R"("model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100)";
  EXPECT_EQ(hf_error(file, "{" + llama + R"(, "max_position_embeddings": 8192})"), "");
  for (const char* bad : {"0", "-1"}) {
    const std::string error = hf_error(file, "{" + llama + R"(, "max_position_embeddings": )" + bad + "}");
    EXPECT_TRUE(mentions(error, "'max_position_embeddings' must be >= 1")) << error;
  }
  const std::string relu = hf_error(file, "{" + llama + R"(, "hidden_act": "relu"})");
  EXPECT_TRUE(mentions(relu, "'hidden_act' = \"relu\" is not supported")) << relu;
  EXPECT_TRUE(mentions(relu, "silu, swish (SwiGLU)")) << relu;
  const std::string gptj = hf_error(file, R"({"model_type": "gptj", "n_layer": 2, "n_embd": 64, "n_head": 4,
    "vocab_size": 100, "activation_function": "relu"})");
  EXPECT_TRUE(mentions(gptj, "'activation_function' = \"relu\"")) << gptj;
  // A count written as a string: the message starts with the path given, not "config.json".
  const std::string as_text = hf_error(file, R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": "2",
    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100})");
  EXPECT_EQ(as_text.rfind(file.string() + ": 'num_hidden_layers' must be a number, got \"2\"", 0), 0u) << as_text;
  // A directory is named as one, with its config.json suggested when it has one.
  try {
    model_from_hf_config(dir.string());
    ADD_FAILURE() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_TRUE(mentions(e.what(), "is a directory")) << e.what();
    EXPECT_TRUE(mentions(e.what(), "did you mean '" + file.string() + "'")) << e.what();
  }
  EXPECT_THROW(model_from_hf_config((dir / "missing.json").string()), BadInput);
}

// ---- Calibration entries ([[calibration]], in --catalog files and --calibration files) ----------

namespace {

// A partial calibration of the H100 that loads; the tests change one thing at a time.
const std::string kCalibration = "[[calibration]]\ndevice = \"h100\"\nmemory_efficiency = 0.8\n";

// The BadInput message of reading `toml` as a --calibration file, or "" when it is accepted.
std::string calibration_file_error(const std::string& toml) {
  return mlsysim::testing::bad_input_of([&] {
    Catalog c = Catalog::builtin();
    c.add_calibration_toml(toml, "cal.toml");
  });
}

}  // namespace

TEST(CatalogInput, TheTestCalibrationIsValid) {
  EXPECT_EQ(toml_error(kCalibration), "");
  EXPECT_EQ(calibration_file_error(kCalibration), "");
  Catalog c = cat();
  c.add_toml(kCalibration, "user.toml");
  EXPECT_DOUBLE_EQ(c.hardware("h100").efficiency.memory, 0.8);
}

// A misspelt calibration key used to do nothing: the device kept its old value without a word.
TEST(CatalogInput, CalibrationKeysAreCheckedLikeDeviceKeys) {
  const std::vector<RefusedInput> cases = {
      {with(kCalibration, "memory_efficiency", "memroy_efficiency"),
       "user.toml [h100]: unknown key 'memroy_efficiency' in [[calibration]]: did you mean 'memory_efficiency'?"},
      {kCalibration + "kernel_overhead = 4\n", "unknown key 'kernel_overhead' in [[calibration]]: did you mean "
                                               "'kernel_overhead_us'?"},
      {kCalibration + "zzz = 1\n", "unknown key 'zzz' in [[calibration]] (known keys: device, source, "
                                   "memory_efficiency"},
      {kCalibration + "[calibration.gemm_efficiency]\nbf61 = 0.7\n",
       "unknown precision 'bf61' in [calibration.gemm_efficiency]"},
      {kCalibration + "[calibration.gemm_efficiency]\nbf61 = 0.7\n", "did you mean 'bf16'?"},
      {kCalibration + "[calibration.gemm_efficiency]\nbf16 = 0.7\nBF16 = 0.6\n", "gives bf16 twice"},
      {kCalibration + "[[calibration.attention_head_dim_rate]]\nhead_dim = 64\nrelative_rte = 0.7\n",
       "unknown key 'relative_rte' in [[calibration.attention_head_dim_rate]]: did you mean 'relative_rate'?"},
      {kCalibration + "[[calibration.conv_measured]]\nn = 64\nk = 576\nout_pixels = 3136\nbatch = 32\ntflop = 100\n",
       "unknown key 'tflop' in [[calibration.conv_measured]]: did you mean 'tflops'?"},
      // One bracket pair defines a table, not an entry: it used to be skipped.
      {"[calibration]\ndevice = \"h100\"\nmemory_efficiency = 0.8\n", "write each entry under [[calibration]]"},
      {kCalibration + "attention_head_dim_rate = [64, 128]\n",
       "write each entry under [[calibration.attention_head_dim_rate]]"},
  };
  expect_each_refused(cases, toml_error);
  // A --calibration file is checked the same way, and holds calibrations only.
  const std::string typo = calibration_file_error(with(kCalibration, "memory_efficiency", "memroy_efficiency"));
  EXPECT_TRUE(mentions(typo, "cal.toml [h100]: unknown key 'memroy_efficiency'")) << typo;
  EXPECT_TRUE(mentions(typo, "did you mean 'memory_efficiency'?")) << typo;
  const std::string table = calibration_file_error(with(kCalibration, "[[calibration]]", "[[calibraton]]"));
  EXPECT_TRUE(mentions(table, "unknown key 'calibraton'")) << table;
  EXPECT_TRUE(mentions(table, "did you mean 'calibration'?")) << table;
  EXPECT_TRUE(mentions(calibration_file_error(kDevice), "unknown key 'device'")) << calibration_file_error(kDevice);
  // In a --catalog directory the message names the file.
  const fs::path dir = fresh_dir("mlsysim_test_calibration_keys");
  std::ofstream(dir / "cal.toml") << with(kCalibration, "memory_efficiency", "memroy_efficiency");
  try {
    (void)Catalog::with_user_dir(dir.string());
    ADD_FAILURE() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_TRUE(mentions(e.what(), (dir / "cal.toml").string() + " [h100]: unknown key 'memroy_efficiency'"))
        << e.what();
  }
}

// Calibration values of the wrong type or outside their range are refused, naming the field.
TEST(CatalogInput, CalibrationValuesAreCheckedLikeDeviceValues) {
  const std::string conv =
      kCalibration + "[[calibration.conv_measured]]\nn = 64\nk = 576\nout_pixels = 3136\nbatch = 32\ntflops = 100\n";
  const std::string rate = kCalibration + "[[calibration.attention_head_dim_rate]]\nhead_dim = 64\nrelative_rate = 0.7\n";
  const std::vector<RefusedInput> cases = {
      {with(kCalibration, "0.8", "\"0.8\""), "memory_efficiency must be a number, got \"0.8\""},
      {with(kCalibration, "\"h100\"", "3"), "'device' must be a string, got 3"},
      {with(kCalibration, "device = \"h100\"\n", ""), "names no device"},
      {kCalibration + "gemm_efficiency = 0.7\n", "'gemm_efficiency' must be a table of precisions"},
      {kCalibration + "tile_m = 0\n", "'tile_m' must be a whole number >= 1"},
      {kCalibration + "tile_n = 64.5\n", "'tile_n' must be a whole number"},
      {with(conv, "batch = 32", "batch = 0"), "conv_measured 'batch' must be a finite number > 0, got 0"},
      {with(conv, "tflops = 100", "tflops = \"fast\""), "conv_measured 'tflops' must be a number > 0"},
      {with(conv, "tflops = 100", "tflops = 1e14"), "plausible range"},  // FLOP/s written as TFLOP/s
      {with(conv, "n = 64\n", ""), "conv_measured 'n' must be a number, got nothing"},
      {with(rate, "head_dim = 64", "head_dim = \"64\""), "attention_head_dim_rate 'head_dim' must be a number"},
      {with(rate, "relative_rate = 0.7", "relative_rate = 3"), "relative_rate in (0, 2]"},
  };
  expect_each_refused(cases, toml_error);
  // The valid rows load as written.
  Catalog c = cat();
  c.add_toml(with(conv, "memory_efficiency = 0.8\n", "memory_efficiency = 0.8\ntile_m = 64\n"), "user.toml");
  const auto& e = c.hardware("h100").efficiency;
  ASSERT_EQ(e.conv_measured.size(), 1u);
  EXPECT_DOUBLE_EQ(e.conv_measured[0].flops_per_s, 100e12);
  EXPECT_DOUBLE_EQ(e.conv_measured[0].batch, 32);
  EXPECT_EQ(e.tile_m, 64);
}

// One --catalog directory holds device, model, calibration and fleet tables; a table name neither
// catalog reads ([[devices]], [[fabrc]]) used to define nothing without a word.
TEST(CatalogInput, UnknownTopLevelTablesAreRefused) {
  const std::string devices = toml_error(with(kDevice, "[[device]]", "[[devices]]"));
  EXPECT_TRUE(mentions(devices, "user.toml: unknown key 'devices'")) << devices;
  EXPECT_TRUE(mentions(devices, "did you mean 'device'?")) << devices;
  const std::string fabric = toml_error("[[fabrc]]\nid = \"x\"\n");
  EXPECT_TRUE(mentions(fabric, "did you mean 'fabric'?")) << fabric;
  // The fleet tables themselves are read by the fleet catalog: the device catalog lets them be.
  EXPECT_EQ(toml_error("[[fabric]]\nid = \"x\"\n"), "");
}

// A flag is true or false: 1 used to read as true (toml++ converts an integer to a bool on request).
TEST(CatalogInput, FlagsAreTrueOrFalseNotNumbers) {
  const std::string error = toml_error(kModel + "tied_embeddings = 1\n");
  EXPECT_TRUE(mentions(error, "'tied_embeddings' must be true or false, got 1")) << error;
  EXPECT_EQ(toml_error(kModel + "tied_embeddings = true\n"), "");
}
