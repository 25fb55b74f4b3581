#include "common/lingua/xlmr_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace ctx::lingua {
namespace {

absl::StatusOr<int64_t> GetInt(const nlohmann::json& j, const char* key, bool required,
                               int64_t fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required)
      return absl::InvalidArgumentError(absl::StrCat("config.json: missing '", key, "'"));
    return fallback;
  }
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: '", key, "' is not an integer"));
  }
  return it->get<int64_t>();
}

}  // namespace

absl::StatusOr<XlmrConfig> XlmrConfig::Parse(absl::string_view json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config.json: not a JSON object");
  }
  std::string model_type = j.value("model_type", std::string());
  if (model_type != "xlm-roberta" && model_type != "roberta") {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: model_type '", model_type,
                     "' is not xlm-roberta (only the XLM-R family is supported)"));
  }
  std::string act = j.value("hidden_act", std::string("gelu"));
  if (act != "gelu") {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: hidden_act '", act, "' unsupported (need exact-erf 'gelu')"));
  }
  std::string pos_type = j.value("position_embedding_type", std::string("absolute"));
  if (pos_type != "absolute") {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: position_embedding_type '", pos_type, "' unsupported"));
  }
  XlmrConfig c;
  struct Field {
    const char* key;
    int64_t* dst;
    bool required;
    int64_t fallback;
  } fields[] = {
      {"vocab_size", &c.vocab_size, true, 0},
      {"hidden_size", &c.hidden_size, true, 0},
      {"num_hidden_layers", &c.num_layers, true, 0},
      {"num_attention_heads", &c.num_heads, true, 0},
      {"intermediate_size", &c.intermediate_size, true, 0},
      {"max_position_embeddings", &c.max_position_embeddings, true, 0},
      {"type_vocab_size", &c.type_vocab_size, false, 1},
      {"pad_token_id", &c.pad_token_id, false, 1},
  };
  for (const Field& f : fields) {
    auto v = GetInt(j, f.key, f.required, f.fallback);
    if (!v.ok()) return v.status();
    *f.dst = *v;
  }
  if (auto it = j.find("num_labels"); it != j.end() && it->is_number_integer()) {
    c.num_labels = it->get<int64_t>();
  } else if (auto id2 = j.find("id2label"); id2 != j.end() && id2->is_object()) {
    c.num_labels = static_cast<int64_t>(id2->size());
  }
  if (auto it = j.find("layer_norm_eps"); it != j.end() && it->is_number()) {
    c.layer_norm_eps = it->get<double>();
  }
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 ||
      c.intermediate_size <= 0 || c.max_position_embeddings <= 2 || c.type_vocab_size <= 0 ||
      c.num_labels <= 0 || c.pad_token_id < 0) {
    return absl::InvalidArgumentError("config.json: sizes must be positive");
  }
  if (c.hidden_size % c.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: hidden_size ", c.hidden_size,
                                                   " not divisible by num_attention_heads ",
                                                   c.num_heads));
  }
  if (c.num_labels != 2) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: num_labels ", c.num_labels,
                                                   " (LLMLingua-2 needs 2: drop, keep)"));
  }
  return c;
}

absl::StatusOr<XlmrConfig> XlmrConfig::Load(const std::string& model_dir) {
  std::string path = model_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = Parse(ss.str());
  if (!c.ok())
    return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  return c;
}

}  // namespace ctx::lingua
