#include "common/tokenizer/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/sentencepiece_model.h"

namespace ctx::tokenizer {
namespace {

// Reads an integer field ("bos_token_id") from a JSON file; -1 when the file or field is
// absent. eos_token_id may be a list in HF configs: the first entry is taken.
int ReadSpecialId(const std::string& path, const char* field) {
  std::ifstream in(path);
  if (!in) return -1;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains(field)) return -1;
  const nlohmann::json& v = j[field];
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int>();
  return -1;
}

}  // namespace

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::LoadFromModelDir(const std::string& dir) {
  int bos = -1, eos = -1;
  for (const char* file : {"generation_config.json", "config.json"}) {
    const std::string path = absl::StrCat(dir, "/", file);
    if (bos < 0) bos = ReadSpecialId(path, "bos_token_id");
    if (eos < 0) eos = ReadSpecialId(path, "eos_token_id");
  }
  return Load(absl::StrCat(dir, "/tokenizer.model"), bos, eos);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_path,
                                                           int bos_id, int eos_id) {
  absl::StatusOr<SentencePieceModel> model = SentencePieceModel::Load(model_path);
  if (!model.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot load SentencePiece model ",
                                                      model_path, ": ", model.status().message()));
  }
  auto sp = std::make_unique<SentencePieceModel>(*std::move(model));
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->vocab_size_ = sp->size();
  t->bos_id_ = bos_id >= 0 ? bos_id : sp->bos_id();
  t->eos_id_ = eos_id >= 0 ? eos_id : sp->eos_id();
  for (int32_t id : {t->bos_id_, t->eos_id_}) {
    if (id < 0 || id >= t->vocab_size_) {
      return absl::FailedPreconditionError(absl::StrCat(model_path, ": special token id ", id,
                                                        " outside vocabulary of ", t->vocab_size_));
    }
  }
  t->sp_ = std::move(sp);
  return t;
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(absl::string_view text, bool add_bos) const {
  const std::vector<int> pieces = sp_->Encode(text);
  std::vector<int32_t> ids;
  ids.reserve(pieces.size() + 1);
  if (add_bos) ids.push_back(bos_id_);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer: token id ", ids[i], " at index ",
                                                     i, " is outside the vocabulary [0, ",
                                                     vocab_size_, ")"));
    }
    pieces.push_back(ids[i]);
  }
  return sp_->Decode(pieces);
}

absl::StatusOr<std::string> Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= vocab_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer: token id ", id, " is outside the vocabulary [0, ", vocab_size_, ")"));
  }
  const SentencePieceModel::Piece& p = sp_->piece(id);
  if (p.type == SentencePieceModel::PieceType::kControl) return std::string();
  if (p.type == SentencePieceModel::PieceType::kUnknown) return std::string(" \xE2\x81\x87 ");
  const std::string& piece = p.text;
  if (p.type == SentencePieceModel::PieceType::kByte) {
    // "<0xNN>": exactly one byte.
    if (piece.size() != 6) return absl::InternalError(absl::StrCat("bad byte piece ", piece));
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  std::string out;
  out.reserve(piece.size());
  static constexpr absl::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581
  for (size_t i = 0; i < piece.size();) {
    if (absl::string_view(piece).substr(i, 3) == kSpaceMark) {
      out.push_back(' ');
      i += 3;
    } else {
      out.push_back(piece[i++]);
    }
  }
  return out;
}

bool Tokenizer::IsControl(int32_t id) const {
  return id >= 0 && id < vocab_size_ &&
         sp_->piece(id).type == SentencePieceModel::PieceType::kControl;
}

std::string Tokenizer::IdToPiece(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return std::string();
  return sp_->piece(id).text;
}

}  // namespace ctx::tokenizer
