#include "common/model/llama_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ctx::model {
namespace {

using Json = nlohmann::json;

absl::Status ReadInt(const Json& j, const char* key, bool required, int* out) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) return absl::InvalidArgumentError(absl::StrCat("config.json: missing ", key));
    return absl::OkStatus();
  }
  const Json& v = j[key];
  if (!v.is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: ", key, " must be an integer, got ", v.dump()));
  }
  const int64_t x = v.get<int64_t>();
  if (x < INT32_MIN || x > INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " out of range: ", x));
  }
  *out = static_cast<int>(x);
  return absl::OkStatus();
}

absl::Status ReadDouble(const Json& j, const char* key, double* out) {
  if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
  if (!j[key].is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: ", key, " must be a number, got ", j[key].dump()));
  }
  *out = j[key].get<double>();
  return absl::OkStatus();
}

// bos/eos may be an integer or (eos in newer HF configs) a list whose first entry we take.
absl::Status ReadTokenId(const Json& j, const char* key, int32_t* out) {
  if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
  const Json& v = j[key];
  const Json& x = (v.is_array() && !v.empty()) ? v[0] : v;
  if (!x.is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", key, " must be an integer, got ", v.dump()));
  }
  *out = x.get<int32_t>();
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string LlamaConfig::CanonicalString() const {
  return absl::StrFormat(
      "llama;hidden=%d;intermediate=%d;layers=%d;heads=%d;kv_heads=%d;head_dim=%d;eps=%.9g;"
      "rope_theta=%.17g;vocab=%d;max_pos=%d;tied=%d;bos=%d;eos=%d",
      hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim,
      static_cast<double>(rms_norm_eps), rope_theta, vocab_size, max_position_embeddings,
      tie_word_embeddings ? 1 : 0, bos_token_id, eos_token_id);
}

absl::Status ValidateLlamaConfig(const LlamaConfig& c) {
  auto positive = [](const char* name, int v) -> absl::Status {
    if (v <= 0)
      return absl::InvalidArgumentError(absl::StrCat("config: ", name, " must be > 0, got ", v));
    return absl::OkStatus();
  };
  for (auto [name, v] : {std::pair<const char*, int>{"hidden_size", c.hidden_size},
                         {"intermediate_size", c.intermediate_size},
                         {"num_hidden_layers", c.num_layers},
                         {"num_attention_heads", c.num_heads},
                         {"num_key_value_heads", c.num_kv_heads},
                         {"head_dim", c.head_dim},
                         {"vocab_size", c.vocab_size},
                         {"max_position_embeddings", c.max_position_embeddings}}) {
    if (absl::Status s = positive(name, v); !s.ok()) return s;
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config: num_attention_heads (", c.num_heads,
                                                   ") must be a multiple of num_key_value_heads (",
                                                   c.num_kv_heads, ")"));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: head_dim must be even for RoPE, got ", c.head_dim));
  }
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: rms_norm_eps must be a positive number, got ", c.rms_norm_eps));
  }
  if (!(c.rope_theta > 1.0) || !std::isfinite(c.rope_theta)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: rope_theta must be > 1, got ", c.rope_theta));
  }
  // Guards against absurd sizes that would overflow index arithmetic.
  const int64_t kLimit = int64_t{1} << 20;
  if (c.hidden_size > kLimit || c.intermediate_size > kLimit || c.vocab_size > (int64_t{1} << 24) ||
      c.max_position_embeddings > kLimit || c.num_layers > 4096 ||
      int64_t{c.num_heads} * c.head_dim > kLimit) {
    return absl::InvalidArgumentError("config: dimensions are implausibly large");
  }
  for (auto [name, id] : {std::pair<const char*, int32_t>{"bos_token_id", c.bos_token_id},
                          {"eos_token_id", c.eos_token_id}}) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config: ", name, " ", id, " is outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LlamaConfig> ParseLlamaConfig(absl::string_view config_json,
                                             absl::string_view generation_config_json) {
  Json j = Json::parse(config_json.begin(), config_json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config.json: not a JSON object");
  }
  if (j.contains("model_type") && j["model_type"].is_string() && j["model_type"] != "llama") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: model_type is ", j["model_type"].get<std::string>(), ", expected llama"));
  }
  if (j.contains("hidden_act") && j["hidden_act"].is_string() && j["hidden_act"] != "silu") {
    return absl::InvalidArgumentError(absl::StrCat("config.json: hidden_act ",
                                                   j["hidden_act"].get<std::string>(),
                                                   " is not supported (only silu)"));
  }
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    if (j.contains(bias) && j[bias].is_boolean() && j[bias].get<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat("config.json: ", bias, " is not supported"));
    }
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return absl::InvalidArgumentError("config.json: rope_scaling is not supported");
  }
  LlamaConfig c;
  absl::Status s;
  if (s = ReadInt(j, "hidden_size", true, &c.hidden_size); !s.ok()) return s;
  if (s = ReadInt(j, "intermediate_size", true, &c.intermediate_size); !s.ok()) return s;
  if (s = ReadInt(j, "num_hidden_layers", true, &c.num_layers); !s.ok()) return s;
  if (s = ReadInt(j, "num_attention_heads", true, &c.num_heads); !s.ok()) return s;
  c.num_kv_heads = c.num_heads;
  if (s = ReadInt(j, "num_key_value_heads", false, &c.num_kv_heads); !s.ok()) return s;
  if (s = ReadInt(j, "vocab_size", true, &c.vocab_size); !s.ok()) return s;
  if (s = ReadInt(j, "max_position_embeddings", true, &c.max_position_embeddings); !s.ok())
    return s;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  if (s = ReadInt(j, "head_dim", false, &c.head_dim); !s.ok()) return s;
  double eps = c.rms_norm_eps;
  if (s = ReadDouble(j, "rms_norm_eps", &eps); !s.ok()) return s;
  c.rms_norm_eps = static_cast<float>(eps);
  if (s = ReadDouble(j, "rope_theta", &c.rope_theta); !s.ok()) return s;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const Json& rp = j["rope_parameters"];
    if (rp.contains("rope_type") && rp["rope_type"].is_string() && rp["rope_type"] != "default") {
      return absl::InvalidArgumentError(absl::StrCat("config.json: rope_type ",
                                                     rp["rope_type"].get<std::string>(),
                                                     " is not supported (only default)"));
    }
    if (s = ReadDouble(rp, "rope_theta", &c.rope_theta); !s.ok()) return s;
  }
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_null()) {
    if (!j["tie_word_embeddings"].is_boolean()) {
      return absl::InvalidArgumentError("config.json: tie_word_embeddings must be a boolean");
    }
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  if (s = ReadTokenId(j, "bos_token_id", &c.bos_token_id); !s.ok()) return s;
  if (s = ReadTokenId(j, "eos_token_id", &c.eos_token_id); !s.ok()) return s;
  if (!generation_config_json.empty()) {
    Json g =
        Json::parse(generation_config_json.begin(), generation_config_json.end(), nullptr, false);
    if (g.is_discarded() || !g.is_object()) {
      return absl::InvalidArgumentError("generation_config.json: not a JSON object");
    }
    if (s = ReadTokenId(g, "bos_token_id", &c.bos_token_id); !s.ok()) return s;
    if (s = ReadTokenId(g, "eos_token_id", &c.eos_token_id); !s.ok()) return s;
  }
  if (s = ValidateLlamaConfig(c); !s.ok()) return s;
  return c;
}

absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& model_dir) {
  absl::StatusOr<std::string> config = ReadFile(model_dir + "/config.json");
  if (!config.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(model_dir, " is not a model directory: ", config.status().message()));
  }
  absl::StatusOr<std::string> gen = ReadFile(model_dir + "/generation_config.json");
  absl::StatusOr<LlamaConfig> c = ParseLlamaConfig(*config, gen.ok() ? *gen : std::string());
  if (!c.ok()) {
    return absl::Status(c.status().code(), absl::StrCat(model_dir, ": ", c.status().message()));
  }
  return c;
}

}  // namespace ctx::model
