// SentencePiece tokenizer with XLM-R's fairseq id mapping and LLMLingua-2's added tokens.
//
//   <s>=0  <pad>=1  </s>=2  <unk>=3   spm piece p >= 3 -> p + 1   <mask> = spm_size + 1
//   [NEW0] .. [NEW{n-1}] = spm_size + 2 + i   (atomic: split out before sentencepiece runs)
//
// Text between added tokens is encoded by sentencepiece segment by segment (each segment gets
// sentencepiece's dummy "▁" prefix, as HF's XLMRobertaTokenizer does), empty segments are
// skipped.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/lingua/spm_model.h"

namespace ctx::lingua {

struct Piece {
  std::string text;  // piece string as the tokenizer shows it ("▁word", "<0x0A>", "[NEW0]")
  int32_t id = 0;    // classifier id (fairseq mapping)
};

class XlmrTokenizer {
 public:
  static constexpr int32_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3;
  static constexpr int kDefaultAddedTokens = 100;

  static absl::StatusOr<std::unique_ptr<XlmrTokenizer>> Load(
      const std::string& spm_model_path, int num_added_tokens = kDefaultAddedTokens);
  // From an HF tokenizer.json (Unigram vocabulary + precompiled charsmap), see tokenizer_json.h.
  static absl::StatusOr<std::unique_ptr<XlmrTokenizer>> LoadFromTokenizerJson(
      const std::string& tokenizer_json_path, int num_added_tokens = kDefaultAddedTokens);
  ~XlmrTokenizer();

  // Pieces of `text` (no <s>/</s>). Input must be valid UTF-8 (checked by callers).
  std::vector<Piece> Tokenize(absl::string_view text) const;
  // Classifier id of a piece string (specials, [NEWi], spm pieces; unknown -> <unk>).
  int32_t PieceToId(absl::string_view piece) const;
  std::string IdToPiece(int32_t id) const;

  // Text of one piece: "▁" -> " ", byte pieces "<0xAB>" -> that byte, specials -> "".
  std::string PieceText(absl::string_view piece) const;
  // HF convert_tokens_to_string with the Metaspace decoder: concatenated piece texts with the
  // first leading space (the dummy prefix) removed. [NEWi] stay literal.
  std::string PiecesToString(std::span<const std::string> pieces) const;

  int32_t mask_id() const { return mask_id_; }
  int32_t added_token_base() const { return mask_id_ + 1; }
  int num_added_tokens() const { return num_added_; }
  // Total ids: spm_size + 2 + num_added_tokens.
  int32_t vocab_size() const { return added_token_base() + num_added_; }
  // "[NEWi]"
  static std::string AddedToken(int i);
  // i if `piece` is "[NEWi]" with 0 <= i < num_added_tokens, else -1.
  int AddedTokenIndex(absl::string_view piece) const;
  // <s>, </s>, <unk>, <pad>, <mask>: skipped when merging tokens into words.
  static bool IsSpecialPiece(absl::string_view piece);

 private:
  XlmrTokenizer() = default;
  static absl::StatusOr<std::unique_ptr<XlmrTokenizer>> Finish(std::unique_ptr<SpmModel> sp,
                                                               const std::string& origin,
                                                               int num_added_tokens);
  std::unique_ptr<SpmModel> sp_;
  int32_t mask_id_ = 0;
  int num_added_ = 0;
};

}  // namespace ctx::lingua
