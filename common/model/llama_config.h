// Hyper-parameters of a LlamaForCausalLM checkpoint, read from its config.json.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::model {

struct LlamaConfig {
  int hidden_size = 0;        // H
  int intermediate_size = 0;  // I (SwiGLU width)
  int num_layers = 0;         // L
  int num_heads = 0;          // query heads
  int num_kv_heads = 0;       // key/value heads (GQA: num_heads % num_kv_heads == 0)
  int head_dim = 0;           // D (default H / num_heads)
  float rms_norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  int vocab_size = 0;  // V
  int max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  int32_t bos_token_id = 1;
  int32_t eos_token_id = 2;

  int q_dim() const { return num_heads * head_dim; }      // width of q
  int kv_dim() const { return num_kv_heads * head_dim; }  // width of k, v: one KV row
  int group_size() const { return num_heads / num_kv_heads; }

  // Every field in a fixed order, for fingerprints and logs.
  std::string CanonicalString() const;
};

// Parses config.json text. `generation_config_json` (may be empty) overrides bos/eos ids the
// way HF's generate() does. Errors are InvalidArgument naming the field.
absl::StatusOr<LlamaConfig> ParseLlamaConfig(absl::string_view config_json,
                                             absl::string_view generation_config_json = "");

// Reads <dir>/config.json and, if present, <dir>/generation_config.json.
// A missing config.json is FailedPrecondition.
absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& model_dir);

// Checks ranges and divisibility (also run by ParseLlamaConfig).
absl::Status ValidateLlamaConfig(const LlamaConfig& config);

}  // namespace ctx::model
