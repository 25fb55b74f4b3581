#include "common/lingua/tokenizer_json.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace ctx::lingua {
namespace {

// --- protobuf wire format ---
void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void PutKey(std::string* out, int field, int wire) {
  PutVarint(out, static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire));
}
void PutInt(std::string* out, int field, int64_t v) {  // int32/enum/bool (negative: 10 bytes)
  PutKey(out, field, 0);
  PutVarint(out, static_cast<uint64_t>(v));
}
void PutBytes(std::string* out, int field, absl::string_view b) {
  PutKey(out, field, 2);
  PutVarint(out, b.size());
  out->append(b.data(), b.size());
}
void PutFloat(std::string* out, int field, float f) {
  PutKey(out, field, 5);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

// SentencePiece.Type
constexpr int kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6;

std::string PieceMessage(absl::string_view piece, float score, int type) {
  std::string m;
  PutBytes(&m, 1, piece);
  PutFloat(&m, 2, score);
  if (type != kNormal) PutInt(&m, 3, type);
  return m;
}

bool IsBytePiece(absl::string_view p) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return p.size() == 6 && p.substr(0, 3) == "<0x" && hex(p[3]) && hex(p[4]) && p[5] == '>';
}

// Finds the Precompiled normaliser (top level or inside a Sequence).
const nlohmann::json* FindPrecompiled(const nlohmann::json& n) {
  if (!n.is_object()) return nullptr;
  if (n.value("type", "") == "Precompiled") return &n;
  if (auto it = n.find("normalizers"); it != n.end() && it->is_array()) {
    for (const auto& sub : *it)
      if (const auto* p = FindPrecompiled(sub)) return p;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::string> Base64Decode(absl::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=')
      break;
    else
      return absl::InvalidArgumentError("base64: invalid character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

absl::StatusOr<std::string> SpmModelProtoFromTokenizerJson(absl::string_view json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError("tokenizer.json: not a JSON object");
  const auto model = j.find("model");
  if (model == j.end() || !model->is_object() || model->value("type", "") != "Unigram") {
    return absl::InvalidArgumentError(
        "tokenizer.json: model.type is not \"Unigram\" (XLM-R layout expected)");
  }
  const auto vocab = model->find("vocab");
  if (vocab == model->end() || !vocab->is_array() || vocab->size() < 6) {
    return absl::InvalidArgumentError("tokenizer.json: model.vocab missing or too small");
  }
  auto piece_at = [&](size_t i) -> std::string {
    const auto& e = (*vocab)[i];
    return e.is_array() && !e.empty() && e[0].is_string() ? e[0].get<std::string>() : std::string();
  };
  if (piece_at(0) != "<s>" || piece_at(1) != "<pad>" || piece_at(2) != "</s>" ||
      piece_at(3) != "<unk>" || piece_at(vocab->size() - 1) != "<mask>") {
    return absl::InvalidArgumentError(
        "tokenizer.json: vocab is not in XLM-R fairseq order (<s> <pad> </s> <unk> ... <mask>)");
  }
  const bool byte_fallback = model->value("byte_fallback", false);

  std::string proto;
  PutBytes(&proto, 1, PieceMessage("<unk>", 0.0f, kUnknown));
  PutBytes(&proto, 1, PieceMessage("<s>", 0.0f, kControl));
  PutBytes(&proto, 1, PieceMessage("</s>", 0.0f, kControl));
  for (size_t i = 4; i + 1 < vocab->size(); ++i) {
    const auto& e = (*vocab)[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: vocab entry ", i, " is not [piece, score]"));
    }
    const std::string p = e[0].get<std::string>();
    PutBytes(&proto, 1,
             PieceMessage(p, e[1].get<float>(), byte_fallback && IsBytePiece(p) ? kByte : kNormal));
  }
  const int64_t n_pieces = static_cast<int64_t>(vocab->size()) - 2;

  std::string trainer;
  PutInt(&trainer, 3, 1);  // model_type UNIGRAM
  PutInt(&trainer, 4, n_pieces);
  if (byte_fallback) PutInt(&trainer, 35, 1);
  PutInt(&trainer, 40, 0);   // unk_id
  PutInt(&trainer, 41, 1);   // bos_id
  PutInt(&trainer, 42, 2);   // eos_id
  PutInt(&trainer, 43, -1);  // pad_id
  PutBytes(&proto, 2, trainer);

  std::string charsmap;
  if (j.contains("normalizer")) {
    if (const auto* pc = FindPrecompiled(j["normalizer"])) {
      auto decoded = Base64Decode(pc->value("precompiled_charsmap", ""));
      if (!decoded.ok()) return decoded.status();
      charsmap = *std::move(decoded);
    }
  }
  std::string norm;
  PutBytes(&norm, 1, charsmap.empty() ? "identity" : "nmt_nfkc");
  if (!charsmap.empty()) PutBytes(&norm, 2, charsmap);
  PutInt(&norm, 3, 1);  // add_dummy_prefix (Metaspace prepend)
  PutInt(&norm, 4, 1);  // remove_extra_whitespaces (Replace " {2,}" + strip)
  PutInt(&norm, 5, 1);  // escape_whitespaces (" " -> "▁")
  PutBytes(&proto, 3, norm);
  return proto;
}

}  // namespace ctx::lingua
