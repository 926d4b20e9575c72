// Model catalog entries. Transformers are architecture specs from which parameters, FLOPs and bytes
// are derived (physics/transformer.hpp); CNNs list their layers; DLRM and opaque models carry
// published totals.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace mlsysim {

enum class ModelKind { Decoder, Encoder, EncoderDecoder, CNN, DLRM, Opaque };

enum class FfnActivation { SwiGLU, GeGLU, GELU, ReLU };
constexpr bool is_gated(FfnActivation a) {
  return a == FfnActivation::SwiGLU || a == FfnActivation::GeGLU;
}

struct TransformerSpec {
  int layers = 0;  // decoder layers (decoder-only) or encoder layers (encoder-only)
  int hidden = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int ffn = 0;
  FfnActivation act = FfnActivation::GELU;
  long vocab = 0;
  bool tied_embeddings = false;
  int max_seq = 0, default_seq = 0;
  bool layernorm = false;        // LayerNorm (weight+bias) vs RMSNorm (weight only)
  bool learned_positions = false;
  // The reference (Hugging Face) module computes q/k/v (and gate/up) in one fused Linear, as GPT-2's
  // c_attn and Phi-3's qkv_proj/gate_up_proj do; matters only for --fusion hf kernel counts.
  bool fused_projection_modules = false;
  // The reference module's activation is GPT-2's "gelu_new" (HF NewGELUActivation): the tanh GELU
  // written as 8 PyTorch ops; matters only for --fusion hf.
  bool python_gelu_tanh = false;
  // Dropout probability the reference modules apply in training to the embeddings and to each
  // residual branch (GPT2Config resid_pdrop/embd_pdrop, BertConfig hidden_dropout_prob); 0: none.
  // Matters only for --fusion hf training.
  double train_dropout = 0;
  bool bias = false, qkv_bias = false;
  // RMSNorm over each head of q and of k before RoPE, with a head_dim-wide weight each (Qwen3's
  // q_norm / k_norm).
  bool qk_norm = false;
  // MoE
  int experts = 0, experts_per_token = 0, shared_experts = 0, moe_ffn = 0, first_dense_layers = 0;
  // MLA (DeepSeek): latent KV compression
  int q_lora_rank = 0, kv_lora_rank = 0, qk_nope_head_dim = 0, qk_rope_head_dim = 0,
      v_head_dim = 0;
  // encoder-decoder
  int encoder_layers = 0, decoder_layers = 0, encoder_seq = 0;
  std::vector<int> audio_conv_stem;  // [mel_bins, hidden] two k=3 convs (Whisper)
  // vision transformers
  int patch_in_channels = 0, patch_size = 0, image_size = 0, classifier = 0;
  // BERT-style extras: token-type embeddings and the pooler dense layer
  int type_vocab = 0;
  bool pooler = false;
  // local attention
  int sliding_window = 0, sliding_window_every = 0;
  // Parallel block (GPT-J, GPT-NeoX, Falcon, PaLM): attention and MLP read the same input and
  // their outputs join the residual stream together, y = x + attn(norm(x)) + mlp(norm'(x)), with
  // one shared pre-norm (GPT-J) or two (Falcon's new decoder architecture, ln_attn and ln_mlp).
  bool parallel_block = false;
  int parallel_block_norms = 1;

  [[nodiscard]] bool is_moe() const { return experts > 0; }
  [[nodiscard]] bool is_mla() const { return kv_lora_rank > 0; }
};

struct CnnLayer {
  enum class Type { Conv, Pool, Add, SqueezeExcite, FullyConnected } type = Type::Conv;
  int cin = 0, cout = 0, kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  int h_out = 1, w_out = 1, groups = 1;
  bool batch_norm = false;  // followed by (folded) batch-norm: 2*cout trainable parameters
  bool bias = false;        // the conv itself has a bias
};

struct DlrmSpec {
  std::vector<double> rows_per_table;
  int embedding_dim = 0;
  int lookups_per_table = 1;
  int dense_features = 0;
  std::vector<int> bottom_mlp, top_mlp;
};

struct OpaqueSpec {
  double flops_per_sample = 0;
  double activation_bytes_per_sample = 0;
  int kernels_per_sample = 0;
};

// How a transformer's block weights (attention and MLP projections, experts) are stored. Dense:
// each weight at the run's precision. Sparse24: 2:4 structured sparsity in NVIDIA's compressed
// format (the kept half of the values plus a 2-bit position index each; Mishra et al. 2021,
// arXiv:2104.08378 sec. 3), which sparse tensor-core kernels (cuSPARSELt, CUTLASS) read as is, so
// a memory-bound step moves those bytes. The token embedding and the LM head stay dense (SparseGPT
// and Neural Magic's 2:4 Sparse-Llama checkpoints leave them unpruned). Set by `compress`; catalogs
// describe dense models.
enum class WeightLayout { Dense, Sparse24 };

struct ModelSpec {
  std::string id, name, family;
  std::vector<std::string> aliases;
  ModelKind kind = ModelKind::Decoder;
  TransformerSpec tf;
  std::vector<CnnLayer> cnn_layers;
  std::vector<int> input_shape;  // CNN input [C, H, W]
  DlrmSpec dlrm;
  OpaqueSpec opaque;
  std::optional<double> published_params, published_flops;
  std::string source, params_source, flops_source;
  WeightLayout block_weights = WeightLayout::Dense;

  [[nodiscard]] bool is_transformer() const {
    return kind == ModelKind::Decoder || kind == ModelKind::Encoder ||
           kind == ModelKind::EncoderDecoder;
  }
  [[nodiscard]] bool is_language_model() const {
    return kind == ModelKind::Decoder || kind == ModelKind::EncoderDecoder;
  }
};

const char* to_string(ModelKind k);
// "a decoder model", "an encoder model": the kind with its article, for messages.
std::string a_kind_model(ModelKind k);

}  // namespace mlsysim
