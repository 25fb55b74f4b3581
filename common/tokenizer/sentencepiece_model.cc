#include "common/tokenizer/sentencepiece_model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <queue>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ctx::tokenizer {
namespace {

constexpr absl::string_view kSpaceSymbol = "\xE2\x96\x81";      // U+2581, what ' ' becomes
constexpr absl::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// ---------------------------------------------------------------- protobuf wire format

// One field of a message: its number, wire type and value (varint / fixed bits, or the bytes
// of a length-delimited field).
struct Field {
  uint32_t number = 0;
  int wire_type = 0;
  uint64_t value = 0;
  absl::string_view bytes;
};

// Reads the fields of one message in order; bounds-checked, never reads past `data`.
class WireReader {
 public:
  explicit WireReader(absl::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  absl::StatusOr<Field> Next() {
    Field f;
    absl::StatusOr<uint64_t> key = Varint();
    if (!key.ok()) return key.status();
    f.number = static_cast<uint32_t>(*key >> 3);
    f.wire_type = static_cast<int>(*key & 7);
    if (f.number == 0) return Error("field number 0");
    switch (f.wire_type) {
      case 0: {  // varint
        absl::StatusOr<uint64_t> v = Varint();
        if (!v.ok()) return v.status();
        f.value = *v;
        return f;
      }
      case 1:    // fixed64
      case 5: {  // fixed32
        const size_t n = f.wire_type == 1 ? 8 : 4;
        if (data_.size() - pos_ < n) return Error("truncated fixed-width field");
        uint64_t v = 0;
        std::memcpy(&v, data_.data() + pos_, n);  // little-endian host (x86-64, arm64)
        pos_ += n;
        f.value = v;
        return f;
      }
      case 2: {  // length-delimited
        absl::StatusOr<uint64_t> len = Varint();
        if (!len.ok()) return len.status();
        if (*len > data_.size() - pos_) return Error("length-delimited field past the end");
        f.bytes = data_.substr(pos_, static_cast<size_t>(*len));
        pos_ += static_cast<size_t>(*len);
        return f;
      }
      default:
        return Error(absl::StrCat("unsupported wire type ", f.wire_type));
    }
  }

 private:
  absl::StatusOr<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return Error("truncated varint");
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return Error("varint longer than 10 bytes");
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed SentencePiece model: ", what, " at byte ", pos_));
  }

  absl::string_view data_;
  size_t pos_ = 0;
};

float FloatBits(uint64_t v) {
  const uint32_t bits = static_cast<uint32_t>(v);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// ---------------------------------------------------------------- UTF-8 (sentencepiece's rules)

// Bytes of the character starting with lead byte `c`, from the high nibble (no validation):
// how libsentencepiece splits normalized text into initial BPE symbols.
size_t OneCharLen(char c) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[static_cast<uint8_t>(c) >> 4];
}

bool IsTrail(char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; }
bool IsValidCodepoint(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

// Length of the well-formed UTF-8 character at the start of `s`, 0 if malformed (shortest
// form, no surrogates, <= U+10FFFF; U+FFFD itself counts as well-formed).
size_t ValidCharLen(absl::string_view s) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i])); };
  if (s.empty()) return 0;
  if (b(0) < 0x80) return 1;
  if (s.size() >= 2 && (b(0) & 0xE0) == 0xC0 && IsTrail(s[1])) {
    const uint32_t cp = ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    if (cp >= 0x80) return 2;
  } else if (s.size() >= 3 && (b(0) & 0xF0) == 0xE0 && IsTrail(s[1]) && IsTrail(s[2])) {
    const uint32_t cp = ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (cp >= 0x800 && IsValidCodepoint(cp)) return 3;
  } else if (s.size() >= 4 && (b(0) & 0xF8) == 0xF0 && IsTrail(s[1]) && IsTrail(s[2]) &&
             IsTrail(s[3])) {
    const uint32_t cp =
        ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    if (cp >= 0x10000 && IsValidCodepoint(cp)) return 4;
  }
  return 0;
}

// Appends `bytes` as UTF-8, each byte of a malformed sequence becoming U+FFFD.
void AppendBytesAsUtf8(absl::string_view bytes, std::string* out) {
  while (!bytes.empty()) {
    const size_t n = ValidCharLen(bytes);
    if (n == 0) {
      out->append(kReplacementChar.data(), kReplacementChar.size());
      bytes.remove_prefix(1);
    } else {
      out->append(bytes.data(), n);
      bytes.remove_prefix(n);
    }
  }
}

void ReplaceAll(absl::string_view s, absl::string_view from, absl::string_view to,
                std::string* out) {
  size_t i = 0;
  while (true) {
    const size_t j = s.find(from, i);
    if (j == absl::string_view::npos) break;
    out->append(s.data() + i, j - i);
    out->append(to.data(), to.size());
    i = j + from.size();
  }
  out->append(s.data() + i, s.size() - i);
}

}  // namespace

// ---------------------------------------------------------------- loading

absl::StatusOr<SentencePieceModel> SentencePieceModel::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str());
}

absl::StatusOr<SentencePieceModel> SentencePieceModel::Parse(absl::string_view bytes) {
  SentencePieceModel m;
  int model_type = 1;  // TrainerSpec default: UNIGRAM
  bool treat_whitespace_as_suffix = false;
  std::string bos_piece = "<s>", eos_piece = "</s>";
  std::string normalizer_name, charsmap;
  bool has_denormalizer_rules = false;

  WireReader model(bytes);
  while (!model.done()) {
    absl::StatusOr<Field> f = model.Next();
    if (!f.ok()) return f.status();
    if (f->number == 1 && f->wire_type == 2) {  // repeated SentencePiece pieces
      Piece p;
      WireReader r(f->bytes);
      while (!r.done()) {
        absl::StatusOr<Field> g = r.Next();
        if (!g.ok()) return g.status();
        if (g->number == 1 && g->wire_type == 2) p.text = std::string(g->bytes);
        if (g->number == 2 && g->wire_type == 5) p.score = FloatBits(g->value);
        if (g->number == 3 && g->wire_type == 0) {
          if (g->value < 1 || g->value > 6) {
            return absl::InvalidArgumentError(absl::StrCat(
                "malformed SentencePiece model: piece ", m.pieces_.size(), " has type ", g->value));
          }
          p.type = static_cast<PieceType>(g->value);
        }
      }
      m.pieces_.push_back(std::move(p));
    } else if (f->number == 2 && f->wire_type == 2) {  // TrainerSpec
      WireReader r(f->bytes);
      while (!r.done()) {
        absl::StatusOr<Field> g = r.Next();
        if (!g.ok()) return g.status();
        if (g->wire_type == 0) {
          if (g->number == 3) model_type = static_cast<int>(g->value);
          if (g->number == 24) treat_whitespace_as_suffix = g->value != 0;
          if (g->number == 35) m.byte_fallback_ = g->value != 0;
        } else if (g->wire_type == 2) {
          if (g->number == 44) m.unk_surface_ = std::string(g->bytes);
          if (g->number == 46 && !g->bytes.empty()) bos_piece = std::string(g->bytes);
          if (g->number == 47 && !g->bytes.empty()) eos_piece = std::string(g->bytes);
        }
      }
    } else if ((f->number == 3 || f->number == 5) && f->wire_type == 2) {  // (De)NormalizerSpec
      WireReader r(f->bytes);
      while (!r.done()) {
        absl::StatusOr<Field> g = r.Next();
        if (!g.ok()) return g.status();
        if (f->number == 5) {
          if ((g->number == 2 || g->number == 6) && g->wire_type == 2 && !g->bytes.empty()) {
            has_denormalizer_rules = true;
          }
          continue;
        }
        if (g->number == 1 && g->wire_type == 2) normalizer_name = std::string(g->bytes);
        if (g->number == 2 && g->wire_type == 2) charsmap = std::string(g->bytes);
        if (g->number == 6 && g->wire_type == 2 && !g->bytes.empty()) charsmap = "rules";
        if (g->wire_type == 0) {
          if (g->number == 3) m.add_dummy_prefix_ = g->value != 0;
          if (g->number == 4) m.remove_extra_whitespaces_ = g->value != 0;
          if (g->number == 5) m.escape_whitespaces_ = g->value != 0;
        }
      }
    }
    // Other fields (self_test_data, ...) do not affect encoding.
  }

  if (m.pieces_.empty()) {
    return absl::InvalidArgumentError("malformed SentencePiece model: no pieces");
  }
  if (model_type != 2) {
    return absl::UnimplementedError(
        absl::StrCat("SentencePiece model type ", model_type,
                     " (1 = Unigram, 3 = word, 4 = char) is not "
                     "supported by the built-in reader; only BPE (2) is"));
  }
  if (!charsmap.empty() || has_denormalizer_rules) {
    return absl::UnimplementedError(absl::StrCat(
        "SentencePiece normalizer '", normalizer_name,
        "' has a character map; the built-in reader supports identity normalization only"));
  }
  if (treat_whitespace_as_suffix) {
    return absl::UnimplementedError("SentencePiece treat_whitespace_as_suffix is not supported");
  }

  std::fill(std::begin(m.byte_ids_), std::end(m.byte_ids_), -1);
  for (int i = 0; i < m.size(); ++i) {
    const Piece& p = m.pieces_[i];
    if (p.text.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed SentencePiece model: piece ", i, " is empty"));
    }
    const bool normal = p.type == PieceType::kNormal || p.type == PieceType::kUserDefined ||
                        p.type == PieceType::kUnused;
    if (!(normal ? m.normal_ : m.reserved_).emplace(p.text, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed SentencePiece model: piece '", p.text, "' is defined twice"));
    }
    if (p.type == PieceType::kUserDefined) {
      m.user_defined_.push_back(p.text);
      m.max_user_defined_ = std::max(m.max_user_defined_, p.text.size());
    }
    if (p.type == PieceType::kUnknown) {
      if (m.unk_id_ >= 0) {
        return absl::InvalidArgumentError("malformed SentencePiece model: two unknown pieces");
      }
      m.unk_id_ = i;
    }
    if (p.type == PieceType::kByte) {
      unsigned v = 0;
      char close = 0;
      if (p.text.size() != 6 || std::sscanf(p.text.c_str(), "<0x%2X%c", &v, &close) != 2 ||
          close != '>' || v > 255) {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed SentencePiece model: byte piece '", p.text, "'"));
      }
      m.byte_ids_[v] = i;
    }
  }
  if (m.unk_id_ < 0) {
    return absl::InvalidArgumentError("malformed SentencePiece model: no unknown piece");
  }
  if (m.byte_fallback_) {
    for (int b = 0; b < 256; ++b) {
      if (m.byte_ids_[b] < 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "malformed SentencePiece model: byte_fallback without piece <0x%02X>", b));
      }
    }
  }
  // BOS/EOS as SentencePieceProcessor::bos_id(): the piece's id unless it resolves to <unk>.
  for (auto [name, out] : {std::pair{&bos_piece, &m.bos_id_}, std::pair{&eos_piece, &m.eos_id_}}) {
    const int found = m.PieceToId(*name);
    *out = (found == m.unk_id_ && m.pieces_[found].text != *name) ? -1 : found;
  }
  return m;
}

int SentencePieceModel::PieceToId(absl::string_view piece) const {
  const std::string key(piece);
  if (auto it = reserved_.find(key); it != reserved_.end()) return it->second;
  if (auto it = normal_.find(key); it != normal_.end()) return it->second;
  return unk_id_;
}

size_t SentencePieceModel::MatchUserDefined(absl::string_view s) const {
  size_t best = 0;
  for (const std::string& u : user_defined_) {
    if (u.size() > best && s.substr(0, u.size()) == u) best = u.size();
  }
  return best;
}

// ---------------------------------------------------------------- encoding

// sentencepiece's Normalizer::Normalize with an identity character map: user-defined symbols
// and well-formed characters are copied, malformed bytes become U+FFFD, ' ' becomes U+2581,
// optional dummy prefix, optional removal of leading/repeated/trailing spaces.
std::string SentencePieceModel::Normalize(absl::string_view input) const {
  std::string out;
  if (input.empty()) return out;
  // One normalization unit at the start of `s`: (replacement text, bytes consumed).
  auto prefix = [&](absl::string_view s) -> std::pair<absl::string_view, size_t> {
    if (const size_t u = MatchUserDefined(s); u > 0) return {s.substr(0, u), u};
    const size_t n = ValidCharLen(s);
    if (n == 0) return {kReplacementChar, 1};
    return {s.substr(0, n), n};
  };
  if (remove_extra_whitespaces_) {
    while (!input.empty()) {
      auto [text, consumed] = prefix(input);
      if (text != " ") break;
      input.remove_prefix(consumed);
    }
    if (input.empty()) return out;
  }
  out.reserve(input.size() * 3);
  auto add_space = [&] {
    if (escape_whitespaces_) {
      out.append(kSpaceSymbol.data(), kSpaceSymbol.size());
    } else {
      out.push_back(' ');
    }
  };
  if (add_dummy_prefix_) add_space();
  bool prev_space = remove_extra_whitespaces_;
  while (!input.empty()) {
    auto [text, consumed] = prefix(input);
    while (prev_space && !text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (!text.empty()) {
      for (char c : text) {
        if (c == ' ') {
          add_space();
        } else {
          out.push_back(c);
        }
      }
      prev_space = text.back() == ' ';
    }
    input.remove_prefix(consumed);
    if (!remove_extra_whitespaces_) prev_space = false;
  }
  if (remove_extra_whitespaces_) {
    const absl::string_view space = escape_whitespaces_ ? kSpaceSymbol : absl::string_view(" ");
    while (out.size() >= space.size() &&
           absl::string_view(out).substr(out.size() - space.size()) == space) {
      out.resize(out.size() - space.size());
    }
  }
  return out;
}

// BPE as libsentencepiece's bpe::Model: start from characters (user-defined symbols atomic),
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece (ties:
// leftmost), re-split UNUSED pieces into the pair they were merged from, and spell pieces
// that are not in the vocabulary as <0xNN> bytes (byte fallback) or <unk>.
std::vector<int> SentencePieceModel::Encode(absl::string_view text) const {
  const std::string normalized = Normalize(text);
  std::vector<int> ids;
  if (normalized.empty()) return ids;

  struct Symbol {
    int prev, next;
    bool frozen;  // a user-defined symbol: never merged
    absl::string_view piece;
  };
  struct Pair {
    float score;
    int left, right;
    size_t size;  // bytes of the merged piece when queued (stale if the symbols changed)
  };
  struct Lower {  // priority_queue top = highest score, then smallest left
    bool operator()(const Pair& a, const Pair& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };

  std::vector<Symbol> symbols;
  symbols.reserve(normalized.size());
  absl::string_view rest = normalized;
  while (!rest.empty()) {
    size_t n = MatchUserDefined(rest);
    const bool frozen = n > 0;
    if (!frozen) n = std::min(rest.size(), OneCharLen(rest.front()));
    const int index = static_cast<int>(symbols.size());
    rest.remove_prefix(n);
    symbols.push_back(
        Symbol{index - 1, rest.empty() ? -1 : index + 1, frozen,
               absl::string_view(normalized).substr(normalized.size() - rest.size() - n, n)});
  }

  std::priority_queue<Pair, std::vector<Pair>, Lower> agenda;
  // Merged piece -> the two pieces it was made of (only for UNUSED pieces, re-split below).
  std::unordered_map<std::string, std::pair<absl::string_view, absl::string_view>> unmerge;
  auto maybe_add = [&](int left, int right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const absl::string_view merged(symbols[left].piece.data(),
                                   symbols[left].piece.size() + symbols[right].piece.size());
    const auto it = normal_.find(std::string(merged));
    if (it == normal_.end()) return;
    agenda.push(Pair{pieces_[it->second].score, left, right, merged.size()});
    if (pieces_[it->second].type == PieceType::kUnused) {
      unmerge[std::string(merged)] = {symbols[left].piece, symbols[right].piece};
    }
  };
  for (size_t i = 1; i < symbols.size(); ++i)
    maybe_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = symbols[top.left];
    Symbol& r = symbols[top.right];
    if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != top.size) {
      continue;  // one side was merged into something else since
    }
    l.piece = absl::string_view(l.piece.data(), l.piece.size() + r.piece.size());
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = top.left;
    r.piece = absl::string_view();
    maybe_add(l.prev, top.left);
    maybe_add(top.left, l.next);
  }

  auto emit = [&](absl::string_view w, auto&& self) -> void {
    const int id = PieceToId(w);
    if (pieces_[id].type == PieceType::kUnused) {
      if (auto it = unmerge.find(std::string(w)); it != unmerge.end()) {
        self(it->second.first, self);
        self(it->second.second, self);
        return;
      }
    }
    if (id == unk_id_ && byte_fallback_) {
      for (char c : w) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
      return;
    }
    ids.push_back(id);
  };
  for (int i = 0; i != -1; i = symbols[i].next) emit(symbols[i].piece, emit);
  return ids;
}

// ---------------------------------------------------------------- decoding

std::string SentencePieceModel::Decode(std::span<const int> ids) const {
  std::string text, bytes;
  bool expect_bos_space = true;  // the dummy prefix's "▁" is dropped from the first piece
  bool bos_space_seen = false;
  for (const int id : ids) {
    const Piece& p = pieces_[id];
    if (p.type == PieceType::kByte) {
      bytes.push_back(static_cast<char>(std::stoi(p.text.substr(3, 2), nullptr, 16)));
      continue;
    }
    AppendBytesAsUtf8(bytes, &text);
    bytes.clear();
    if (bos_space_seen || !text.empty()) expect_bos_space = false;
    bos_space_seen = false;
    if (p.type == PieceType::kControl) continue;
    if (p.type == PieceType::kUnknown) {
      text += unk_surface_;
      continue;
    }
    absl::string_view piece = p.text;
    if (expect_bos_space && (add_dummy_prefix_ || remove_extra_whitespaces_) &&
        piece.substr(0, kSpaceSymbol.size()) == kSpaceSymbol) {
      piece.remove_prefix(kSpaceSymbol.size());
      bos_space_seen = !remove_extra_whitespaces_;
    }
    ReplaceAll(piece, kSpaceSymbol, " ", &text);
  }
  AppendBytesAsUtf8(bytes, &text);
  return text;
}

}  // namespace ctx::tokenizer
