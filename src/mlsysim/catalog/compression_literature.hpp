// Accuracy change of compression methods as ranges reported in the literature. These are DATA
// with their citations, not predictions: the change for a given model and task can fall outside
// them (small models lose more; calibration data, group size and fine-tuning matter). Values are
// fractions of the baseline score on zero-shot benchmarks (negative = loss), summarised from the
// cited papers and the tutorial's Part 3 table (slide 3.2), which they bracket.
#pragma once

namespace mlsysim {

struct AccuracyRange {
  const char* key;  // method key used by solvers/compression.cpp
  double low, high; // fraction change of accuracy, low = worst case
  const char* source;
};

inline constexpr AccuracyRange kAccuracyLiterature[] = {
    {"fp16", 0.0, 0.0,
     "Micikevicius et al. 2018, 'Mixed Precision Training' (ICLR): 16-bit matches fp32 accuracy"},
    {"fp8", -0.005, 0.0,
     "Micikevicius et al. 2022, 'FP8 Formats for Deep Learning' (arXiv:2209.05433): FP8 E4M3 "
     "inference within run-to-run noise of 16-bit"},
    {"int8-weight-only", -0.005, 0.0,
     "Dettmers et al. 2022, 'LLM.int8()' (NeurIPS): no degradation up to 175B parameters with "
     "mixed-precision outlier decomposition"},
    {"int8-weights-activations", -0.01, 0.0,
     "Xiao et al. 2023, 'SmoothQuant' (ICML): W8A8 with negligible accuracy loss on OPT/BLOOM/"
     "Llama; tutorial slide 3.2: <1% loss"},
    {"int4-weight-only", -0.05, -0.005,
     "Frantar et al. 2023, 'GPTQ' (ICLR) and Lin et al. 2024, 'AWQ' (MLSys): 4-bit group-wise "
     "weights lose little on large models, more on small ones; tutorial slide 3.2: 2-5% loss"},
    {"int4-weights-activations", -0.10, -0.01,
     "Ashkboos et al. 2024, 'QuaRot' (NeurIPS): W4A4 needs rotations to stay within a few points; "
     "naive W4A4 collapses"},
    {"unstructured-50", -0.03, -0.01,
     "Frantar & Alistarh 2023, 'SparseGPT' (ICML); Sun et al. 2024, 'Wanda' (ICLR): one-shot 50% "
     "unstructured sparsity; tutorial slide 3.2: 1-3% loss"},
    {"unstructured-high", -0.15, -0.03,
     "SparseGPT and Wanda: beyond ~50-60% sparsity the loss rises steeply without retraining"},
    {"n_m-2:4", -0.06, -0.01,
     "SparseGPT and Wanda 2:4 results (larger losses on 7B than on 70B models); Mishra et al. "
     "2021 (arXiv:2104.08378) recover accuracy with fine-tuning; tutorial slide 3.2: 1-2%"},
    {"structured-50", -0.10, -0.02,
     "Ma et al. 2023, 'LLM-Pruner' (NeurIPS): width pruning loses several points before LoRA "
     "recovery; Xia et al. 2024, 'Sheared LLaMA' (ICLR) recovers with continued pre-training; "
     "tutorial slide 3.2: 2-5%"},
};

inline const AccuracyRange* accuracy_literature(const char* key) {
  for (const auto& a : kAccuracyLiterature) {
    const char* p = a.key;
    const char* q = key;
    while (*p && *p == *q) ++p, ++q;
    if (*p == 0 && *q == 0) return &a;
  }
  return nullptr;
}

}  // namespace mlsysim
