// Hyper-parameters of an HF XLMRobertaForTokenClassification checkpoint (config.json).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::lingua {

struct XlmrConfig {
  int64_t vocab_size = 0;         // rows of word_embeddings (may include the 100 [NEWi] rows)
  int64_t hidden_size = 0;        // H
  int64_t num_layers = 0;         // L
  int64_t num_heads = 0;          // H / head_dim
  int64_t intermediate_size = 0;  // FFN width
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 1;
  int64_t num_labels = 2;
  int64_t pad_token_id = 1;
  double layer_norm_eps = 1e-5;

  int64_t head_dim() const { return hidden_size / num_heads; }

  // Parses config.json text. Checks model_type / architecture, "gelu" (exact erf) activation,
  // absolute positions and consistent sizes.
  static absl::StatusOr<XlmrConfig> Parse(absl::string_view json_text);
  static absl::StatusOr<XlmrConfig> Load(const std::string& model_dir);
};

}  // namespace ctx::lingua
