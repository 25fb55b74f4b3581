#include "common/lingua/word_merge.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"

namespace ctx::lingua {
namespace {

constexpr absl::string_view kMetaspace = "\xE2\x96\x81";  // U+2581
constexpr absl::string_view kAsciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

// Zero code points of the Unicode Nd blocks (each block holds 10 consecutive digits).
constexpr uint32_t kDigitZeros[] = {
    0x0030,  0x0660,  0x06F0,  0x07C0,  0x0966,  0x09E6,  0x0A66,  0x0AE6,  0x0B66,
    0x0BE6,  0x0C66,  0x0CE6,  0x0D66,  0x0DE6,  0x0E50,  0x0ED0,  0x0F20,  0x1040,
    0x1090,  0x17E0,  0x1810,  0x1946,  0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,
    0x1C40,  0x1C50,  0xA620,  0xA8D0,  0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,
    0xFF10,  0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450,
    0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0,
    0x16A60, 0x16AC0, 0x16B50, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
};

bool IsDecimalDigit(uint32_t cp) {
  if (cp >= 0x1D7CE && cp <= 0x1D7FF) return true;  // mathematical digits (5 sets)
  for (uint32_t z : kDigitZeros)
    if (cp >= z && cp < z + 10) return true;
  return false;
}

}  // namespace

bool ContainsDecimalDigit(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c0 = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t len;
    if (c0 < 0x80) {
      cp = c0, len = 1;
    } else if ((c0 >> 5) == 0x6) {
      cp = c0 & 0x1F, len = 2;
    } else if ((c0 >> 4) == 0xE) {
      cp = c0 & 0x0F, len = 3;
    } else if ((c0 >> 3) == 0x1E) {
      cp = c0 & 0x07, len = 4;
    } else {
      ++i;
      continue;
    }
    if (i + len > s.size()) break;
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    if (IsDecimalDigit(cp)) return true;
    i += len;
  }
  return false;
}

absl::string_view StripLeadingMetaspace(absl::string_view s) {
  while (s.substr(0, kMetaspace.size()) == kMetaspace) s.remove_prefix(kMetaspace.size());
  return s;
}

bool ForceTokens::IsForceToken(absl::string_view s) const {
  return std::find(tokens.begin(), tokens.end(), s) != tokens.end();
}

bool ForceTokens::IsSubstitute(absl::string_view s) const {
  for (const auto& [ori, sub] : substitutions)
    if (sub == s) return true;
  return false;
}

std::string ForceTokens::Restore(absl::string_view piece) const {
  for (const auto& [ori, sub] : substitutions)
    if (sub == piece) return ori;
  return std::string(piece);
}

std::string ForceTokens::RestoreAll(std::string text) const {
  for (const auto& [ori, sub] : substitutions) text = absl::StrReplaceAll(text, {{sub, ori}});
  return text;
}

std::string ForceTokens::SubstituteAll(std::string text) const {
  for (const auto& [ori, sub] : substitutions) text = absl::StrReplaceAll(text, {{ori, sub}});
  return text;
}

bool IsWhitespaceBytePiece(absl::string_view piece) {
  return piece.size() == 6 && piece.substr(0, 4) == "<0x0" && piece[5] == '>' &&
         (piece[4] == '9' || (piece[4] >= 'A' && piece[4] <= 'D'));
}

void AppendKeptWord(const MergedWord& w, std::string& out) {
  if (w.after_whitespace_piece && !out.empty()) {
    const char last = out.back();
    if (last != ' ' && last != '\n' && last != '\t' && last != '\r' && last != '\v' &&
        last != '\f') {
      out.push_back(' ');
    }
  }
  out += w.text;
}

std::vector<MergedWord> MergeTokensToWords(std::span<const std::string> pieces,
                                           std::span<const float> probs, const ForceTokens& force,
                                           bool force_reserve_digit, const XlmrTokenizer& tok) {
  std::vector<MergedWord> words;
  double first_prob_no_force = 0.0;
  bool prev_whitespace = false;  // the previous (non-special) piece was a whitespace byte
  const size_t n = std::min(pieces.size(), probs.size());
  for (size_t i = 0; i < n; ++i) {
    const std::string& piece = pieces[i];
    double p = probs[i];
    if (XlmrTokenizer::IsSpecialPiece(piece)) continue;
    // Python `token in string.punctuation` is a *substring* test: "(", but also "()" or "{|}".
    const bool punct = !piece.empty() && kAsciiPunctuation.find(piece) != absl::string_view::npos;
    const bool whitespace = IsWhitespaceBytePiece(piece);
    const bool new_word = punct || force.IsForceToken(piece) || force.IsSubstitute(piece) ||
                          absl::StartsWith(piece, kMetaspace) || whitespace || prev_whitespace ||
                          words.empty();  // reference raises IndexError here; we start a word
    const bool follows_whitespace = prev_whitespace;
    prev_whitespace = whitespace;
    const absl::string_view pure = StripLeadingMetaspace(piece);
    const std::string piece_text = tok.PieceText(piece);
    const bool digit = force_reserve_digit && ContainsDecimalDigit(piece_text);
    if (new_word) {
      first_prob_no_force = p;
      if (force.IsForceToken(pure) || force.IsSubstitute(pure)) p = 1.0;
      MergedWord w;
      if (force.IsSubstitute(piece)) {
        w.stored = force.Restore(piece);
        w.text = w.stored;
      } else {
        w.stored = piece;
        w.text = piece_text;
      }
      w.after_whitespace_piece =
          follows_whitespace && !whitespace && !w.text.empty() && w.text[0] != ' ';
      w.probs.push_back(digit ? 1.0 : p);
      w.probs_no_force.push_back(first_prob_no_force);
      words.push_back(std::move(w));
    } else {
      MergedWord& w = words.back();
      w.stored.append(pure.data(), pure.size());
      w.text += tok.PieceText(pure);
      w.probs.push_back(digit ? 1.0 : p);
      w.probs_no_force.push_back(first_prob_no_force);
    }
  }
  return words;
}

double WordProbability(std::span<const double> piece_probs, TokenToWord mode) {
  if (piece_probs.empty()) return 0.0;
  if (mode == TokenToWord::kFirst) return piece_probs[0];
  double sum = 0.0;
  for (double p : piece_probs) sum += p;
  return sum / static_cast<double>(piece_probs.size());
}

}  // namespace ctx::lingua
