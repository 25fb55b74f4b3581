// LLMLingua-2 token -> word merging for the XLM-R family (reference __merge_token_to_word and
// __token_prob_to_word_prob), including its quirks:
//  * specials (<s> </s> <unk> <pad> <mask>) are skipped, so genuine <unk> pieces vanish;
//  * a new word starts at a piece that is a substring of Python's string.punctuation (the
//    reference's `token in string.punctuation`: "(", "()", "{|}"), a piece equal to a force
//    token, a [NEWi] piece, or a piece starting with "▁";
//  * a new word whose pure form (leading "▁"s stripped) is a force token or [NEWi] gets p = 1;
//  * force_reserve_digit: a piece containing a Unicode decimal digit gets p = 1;
//  * the "no force" list repeats the word's first-piece probability for continuation pieces.
// One deliberate extension for tokenizers that keep whitespace as byte pieces (ours: "\n" is
// "<0x0A>"; real XLM-R normalises it to "▁"): a whitespace byte piece is a word of its own and
// the piece after it starts a new word (it follows whitespace, as a "▁" piece does). Without
// this, ".<0x0A><0x0A>This" is one "word" whose mean mixes three pieces and whose dropping
// glues "world" to the next line's first word.
#pragma once

#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/lingua/xlmr_tokenizer.h"

namespace ctx::lingua {

enum class TokenToWord { kMean, kFirst };

// Force tokens and their [NEWi] substitutes (only those the tokenizer does not keep as one
// piece), in the reference's order.
struct ForceTokens {
  std::vector<std::string> tokens;                                 // as given
  std::vector<std::pair<std::string, std::string>> substitutions;  // original -> "[NEWi]"

  bool IsForceToken(absl::string_view s) const;
  bool IsSubstitute(absl::string_view s) const;  // one of the "[NEWi]" in use
  // "[NEWi]" -> its original force token; anything else unchanged.
  std::string Restore(absl::string_view piece) const;
  // Reverses every substitution in `text` (reference order).
  std::string RestoreAll(std::string text) const;
  std::string SubstituteAll(std::string text) const;
};

struct MergedWord {
  // The reference's word string: first piece raw (keeps "▁", [NEWi] restored), continuation
  // pieces appended without their leading "▁"s.
  std::string stored;
  // What the word contributes to the output text: "▁" -> " ", byte pieces decoded.
  std::string text;
  std::vector<double> probs;           // per piece, after forcing
  std::vector<double> probs_no_force;  // reference quirk: first piece's p for every piece
  // The word follows a whitespace byte piece and its text has no leading space: when that
  // whitespace is dropped, the output needs a " " before the word (see AppendKeptWord).
  bool after_whitespace_piece = false;
};

// Appends a kept word to `out`: its text, preceded by " " when the word followed a (now
// dropped) whitespace piece and `out` does not already end in whitespace.
void AppendKeptWord(const MergedWord& w, std::string& out);

// True for a byte-fallback piece "<0x09>".."<0x0D>" (tab, newline, vt, ff, cr).
bool IsWhitespaceBytePiece(absl::string_view piece);

std::vector<MergedWord> MergeTokensToWords(std::span<const std::string> pieces,
                                           std::span<const float> probs, const ForceTokens& force,
                                           bool force_reserve_digit, const XlmrTokenizer& tok);

// "mean": arithmetic mean (in double); "first": the first piece's probability.
double WordProbability(std::span<const double> piece_probs, TokenToWord mode);

// True if the UTF-8 text contains a Unicode decimal digit (Nd), like Python's re \d.
bool ContainsDecimalDigit(absl::string_view utf8);

// Python str.lstrip("▁").
absl::string_view StripLeadingMetaspace(absl::string_view s);

}  // namespace ctx::lingua
