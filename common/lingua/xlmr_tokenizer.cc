#include "common/lingua/xlmr_tokenizer.h"

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/lingua/tokenizer_json.h"

namespace ctx::lingua {
namespace {
constexpr absl::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

int HexDigit(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}
}  // namespace

XlmrTokenizer::~XlmrTokenizer() = default;

absl::StatusOr<std::unique_ptr<XlmrTokenizer>> XlmrTokenizer::Load(const std::string& path,
                                                                   int num_added_tokens) {
  auto sp = std::make_unique<SpmModel>();
  if (std::string err = sp->Load(path); !err.empty()) {
    return absl::NotFoundError(absl::StrCat("cannot load sentencepiece model ", path, ": ", err));
  }
  return Finish(std::move(sp), path, num_added_tokens);
}

absl::StatusOr<std::unique_ptr<XlmrTokenizer>> XlmrTokenizer::LoadFromTokenizerJson(
    const std::string& path, int num_added_tokens) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto proto = SpmModelProtoFromTokenizerJson(ss.str());
  if (!proto.ok()) {
    return absl::Status(proto.status().code(), absl::StrCat(path, ": ", proto.status().message()));
  }
  auto sp = std::make_unique<SpmModel>();
  if (std::string err = sp->LoadFromSerialized(*proto); !err.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": sentencepiece rejected the converted model: ", err));
  }
  return Finish(std::move(sp), path, num_added_tokens);
}

absl::StatusOr<std::unique_ptr<XlmrTokenizer>> XlmrTokenizer::Finish(std::unique_ptr<SpmModel> sp,
                                                                     const std::string& origin,
                                                                     int num_added_tokens) {
  if (num_added_tokens < 0 || num_added_tokens > 1000) {
    return absl::InvalidArgumentError("num_added_tokens must be in [0, 1000]");
  }
  if (sp->PieceSize() < 4 || sp->unk_id() != 0 || sp->bos_id() != 1 || sp->eos_id() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": XLM-R mapping needs spm ids <unk>=0 <s>=1 </s>=2 (got unk=", sp->unk_id(),
        " bos=", sp->bos_id(), " eos=", sp->eos_id(), ")"));
  }
  auto t = std::unique_ptr<XlmrTokenizer>(new XlmrTokenizer());
  t->sp_ = std::move(sp);
  t->mask_id_ = t->sp_->PieceSize() + 1;
  t->num_added_ = num_added_tokens;
  return t;
}

std::string XlmrTokenizer::AddedToken(int i) { return absl::StrCat("[NEW", i, "]"); }

int XlmrTokenizer::AddedTokenIndex(absl::string_view piece) const {
  if (piece.size() < 6 || piece.substr(0, 4) != "[NEW" || piece.back() != ']') return -1;
  absl::string_view digits = piece.substr(4, piece.size() - 5);
  if (digits.empty() || digits.size() > 4 || (digits.size() > 1 && digits[0] == '0')) return -1;
  int i = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return -1;
    i = i * 10 + (ch - '0');
  }
  return i < num_added_ ? i : -1;
}

bool XlmrTokenizer::IsSpecialPiece(absl::string_view piece) {
  return piece == "<s>" || piece == "</s>" || piece == "<unk>" || piece == "<pad>" ||
         piece == "<mask>";
}

std::vector<Piece> XlmrTokenizer::Tokenize(absl::string_view text) const {
  std::vector<Piece> out;
  auto encode_segment = [&](absl::string_view seg) {
    if (seg.empty()) return;
    const std::vector<int> ids = sp_->Encode(std::string(seg));
    for (int id : ids) {
      // spm <unk>=0 -> 3; pieces p >= 3 -> p + 1 (Encode never yields <s>/</s>).
      out.push_back({sp_->IdToPiece(id), id == 0 ? kUnk : static_cast<int32_t>(id + 1)});
    }
  };
  size_t seg_start = 0, i = 0;
  while (i < text.size()) {
    if (text[i] == '[' && num_added_ > 0) {
      size_t close = text.find(']', i);
      if (close != absl::string_view::npos && close - i <= 9) {
        absl::string_view cand = text.substr(i, close - i + 1);
        int k = AddedTokenIndex(cand);
        if (k >= 0) {
          encode_segment(text.substr(seg_start, i - seg_start));
          out.push_back({std::string(cand), added_token_base() + k});
          i = close + 1;
          seg_start = i;
          continue;
        }
      }
    }
    ++i;
  }
  encode_segment(text.substr(seg_start));
  return out;
}

int32_t XlmrTokenizer::PieceToId(absl::string_view piece) const {
  if (piece == "<s>") return kBos;
  if (piece == "<pad>") return kPad;
  if (piece == "</s>") return kEos;
  if (piece == "<unk>") return kUnk;
  if (piece == "<mask>") return mask_id_;
  if (int k = AddedTokenIndex(piece); k >= 0) return added_token_base() + k;
  const int spm = sp_->PieceToId(std::string(piece));
  if (spm < 3) return kUnk;  // spm's <unk>/<s>/</s> or unknown
  return spm + 1;
}

std::string XlmrTokenizer::IdToPiece(int32_t id) const {
  switch (id) {
    case kBos:
      return "<s>";
    case kPad:
      return "<pad>";
    case kEos:
      return "</s>";
    case kUnk:
      return "<unk>";
    default:
      break;
  }
  if (id == mask_id_) return "<mask>";
  if (id > mask_id_ && id < vocab_size()) return AddedToken(id - added_token_base());
  if (id < 4 || id > mask_id_) return "<unk>";
  return sp_->IdToPiece(id - 1);
}

std::string XlmrTokenizer::PieceText(absl::string_view piece) const {
  if (IsSpecialPiece(piece)) return "";
  // Byte-fallback piece "<0xAB>".
  if (piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>') {
    const int hi = HexDigit(piece[3]), lo = HexDigit(piece[4]);
    if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
  }
  std::string s;
  s.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    if (piece.substr(i, 3) == kMetaspace) {
      s.push_back(' ');
      i += 3;
    } else {
      s.push_back(piece[i++]);
    }
  }
  return s;
}

std::string XlmrTokenizer::PiecesToString(std::span<const std::string> pieces) const {
  std::string s;
  for (const std::string& p : pieces) s += PieceText(p);
  if (!s.empty() && s[0] == ' ') s.erase(0, 1);
  return s;
}

}  // namespace ctx::lingua
