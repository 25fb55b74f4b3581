// The built-in SentencePiece reader (common/tokenizer/sentencepiece_model.h) against
// libsentencepiece 0.1.97 (sentencepiece_backend.h, linked here only: no gRPC in this test):
// identical ids and text on the long documents, the calibration corpus, edge cases and random
// id sequences, for tiny-llama's tokenizer.model and tiny-lingua2's sentencepiece.bpe.model,
// and for variants of the model re-serialized with other normalizer flags, user-defined and
// unused pieces.
#include "common/tokenizer/sentencepiece_model.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/tokenizer/sentencepiece_backend.h"

namespace ctx::tokenizer {
namespace {

using internal::SentencePieceBackend;

const std::string kSource = CTX_SOURCE_DIR;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Texts of the comparison: every long document, every line of the calibration split (+ the
// whole file in 64 KiB blocks), and edge cases.
std::vector<std::string> Corpus(bool full) {
  std::vector<std::string> texts;
  for (const auto& e : std::filesystem::directory_iterator(kSource + "/tests/data/long_docs")) {
    texts.push_back(ReadFile(e.path().string()));
  }
  const std::string valid = ReadFile(kSource + "/models/calibration/valid.txt");
  std::istringstream lines(valid);
  for (std::string line; std::getline(lines, line) && (full || texts.size() < 1500);) {
    texts.push_back(line);
  }
  if (full) {
    for (size_t a = 0; a < valid.size(); a += 65536) texts.push_back(valid.substr(a, 65536));
  }
  for (const char* s :
       {"", " ", "  ", "a", " a", "a ", "  two  spaces  ", "\t tab\n newline\r\n", "\n\n\n",
        "x = 12345 + 0.5e-3", "Ünïcödé façade — “quotes” … ½ ©", "日本語のテキスト、中文文本",
        "emoji 😀👍🏽 and 𝔘𝔫𝔦",
        "\xE2\x96\x81 literal lower block \xE2\x96\x81\xE2\x96\x81", "<s> </s> <unk> <0x41> <pad>",
        "\xEF\xBF\xBD replacement", "a\xCC\x81 combining"}) {
    texts.emplace_back(s);
  }
  // Malformed UTF-8 and control bytes.
  texts.push_back(std::string("bad \xFF\xFE bytes \xC3 truncated \xE2\x82", 34));
  texts.push_back(std::string("nul\0inside", 10));
  texts.push_back("overlong \xC0\xAF surrogate \xED\xA0\x80 end");
  return texts;
}

std::vector<int> RefEncode(const SentencePieceBackend& ref, const std::string& text) {
  std::vector<int> ids;
  std::string error;
  REQUIRE(ref.Encode(text, &ids, &error));
  return ids;
}

std::string RefDecode(const SentencePieceBackend& ref, const std::vector<int>& ids) {
  std::string text, error;
  REQUIRE(ref.Decode(ids, &text, &error));
  return text;
}

// Compares the two on the corpus and on random id sequences; returns the ids compared.
// `full`: the whole calibration split, else its first lines (the variants).
size_t CompareAll(const SentencePieceModel& mine, const SentencePieceBackend& ref, bool full) {
  REQUIRE(mine.size() == ref.PieceSize());
  for (int id = 0; id < mine.size(); ++id) {
    INFO("id " << id);
    CHECK(mine.piece(id).text == ref.IdToPiece(id));
    CHECK((mine.piece(id).type == SentencePieceModel::PieceType::kByte) == ref.IsByte(id));
    CHECK((mine.piece(id).type == SentencePieceModel::PieceType::kControl) == ref.IsControl(id));
    CHECK((mine.piece(id).type == SentencePieceModel::PieceType::kUnknown) == ref.IsUnknown(id));
  }
  CHECK(mine.bos_id() == ref.BosId());
  CHECK(mine.eos_id() == ref.EosId());

  size_t ids_compared = 0, mismatches = 0;
  for (const std::string& text : Corpus(full)) {
    const std::vector<int> want = RefEncode(ref, text);
    const std::vector<int> got = mine.Encode(text);
    ids_compared += want.size();
    if (got != want) {
      ++mismatches;
      INFO("text (" << text.size() << " bytes): " << text.substr(0, 200));
      CHECK(got == want);
      continue;
    }
    if (RefDecode(ref, want) != mine.Decode(got)) {
      ++mismatches;
      INFO("decode of: " << text.substr(0, 200));
      CHECK(mine.Decode(got) == RefDecode(ref, want));
    }
  }
  CHECK(mismatches == 0);

  // Any id sequence decodes alike (bytes forming partial/invalid UTF-8, controls, <unk>,
  // pieces with and without the leading "▁").
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> any(0, mine.size() - 1), small(0, 300), len(1, 12);
  for (int n = 0; n < 3000; ++n) {
    std::vector<int> ids(len(rng));
    for (int& id : ids) id = (n % 2) ? small(rng) : any(rng);  // ids < 300: specials + bytes
    const std::string want = RefDecode(ref, ids);
    if (mine.Decode(ids) != want) {
      INFO("random ids #" << n);
      CHECK(mine.Decode(ids) == want);
      break;
    }
  }
  return ids_compared;
}

TEST_CASE("Built-in SentencePiece reader equals libsentencepiece on the repo's models") {
  for (const char* rel :
       {"/models/tiny-llama/tokenizer.model", "/models/tiny-lingua2/sentencepiece.bpe.model"}) {
    const std::string path = kSource + rel;
    INFO(path);
    auto mine = SentencePieceModel::Load(path);
    INFO(mine.status().ToString());
    REQUIRE(mine.ok());
    std::string error;
    auto ref = SentencePieceBackend::Load(path, &error);
    REQUIRE(ref != nullptr);
    const size_t compared = CompareAll(*mine, *ref, /*full=*/true);
    CHECK(compared > 200000);  // the corpus is large: this is no toy comparison
  }
}

// ---------------------------------------------------------------- re-serialized variants

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void PutKey(int field, int wire_type, std::string* out) { PutVarint(field << 3 | wire_type, out); }
void PutBytes(int field, const std::string& b, std::string* out) {
  PutKey(field, 2, out);
  PutVarint(b.size(), out);
  out->append(b);
}

// The top-level field `number` of a serialized message (first occurrence), raw bytes.
std::string TopField(const std::string& msg, int number) {
  size_t pos = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const uint8_t b = static_cast<uint8_t>(msg.at(pos++));
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (pos < msg.size()) {
    const uint64_t key = varint();
    REQUIRE((key & 7) == 2);  // ModelProto's fields are all messages
    const uint64_t len = varint();
    if (int(key >> 3) == number) return msg.substr(pos, len);
    pos += len;
  }
  return "";
}

struct Variant {
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  std::vector<std::pair<std::string, int>> types;  // piece -> new type
  std::vector<std::string> extra_user_defined;     // appended as USER_DEFINED pieces
};

// tiny-llama's model with its pieces retyped and the normalizer flags replaced; the trainer
// spec is kept byte for byte.
std::string MakeVariant(const SentencePieceModel& base, const std::string& base_bytes,
                        const Variant& v) {
  std::string out;
  auto put_piece = [&](const std::string& text, float score, int type) {
    std::string p;
    PutBytes(1, text, &p);
    PutKey(2, 5, &p);
    p.append(reinterpret_cast<const char*>(&score), 4);
    PutKey(3, 0, &p);
    PutVarint(type, &p);
    PutBytes(1, p, &out);
  };
  for (int id = 0; id < base.size(); ++id) {
    int type = static_cast<int>(base.piece(id).type);
    for (const auto& [text, t] : v.types) {
      if (text == base.piece(id).text) type = t;
    }
    put_piece(base.piece(id).text, base.piece(id).score, type);
  }
  for (const std::string& u : v.extra_user_defined) put_piece(u, 0, 4);
  PutBytes(2, TopField(base_bytes, 2), &out);
  std::string norm;
  PutBytes(1, "identity", &norm);
  PutKey(3, 0, &norm);
  PutVarint(v.add_dummy_prefix, &norm);
  PutKey(4, 0, &norm);
  PutVarint(v.remove_extra_whitespaces, &norm);
  PutBytes(3, norm, &out);
  return out;
}

TEST_CASE("Built-in reader equals libsentencepiece on model variants") {
  const std::string base_path = kSource + "/models/tiny-llama/tokenizer.model";
  const std::string base_bytes = ReadFile(base_path);
  auto base = SentencePieceModel::Parse(base_bytes);
  REQUIRE(base.ok());
  // Common merged pieces become UNUSED (re-split into their parts) or USER_DEFINED (atomic).
  std::vector<std::string> common;
  for (const char* w : {"▁the", "▁and", "ing", "ed", "▁a", "er", "▁of", "▁to"}) {
    if (base->PieceToId(w) != base->unk_id()) common.push_back(w);
  }
  REQUIRE(common.size() >= 4);

  std::vector<std::pair<std::string, Variant>> variants;
  {
    Variant v;
    v.remove_extra_whitespaces = true;
    variants.emplace_back("remove_extra_whitespaces", v);
  }
  {
    Variant v;
    v.add_dummy_prefix = false;
    variants.emplace_back("no dummy prefix", v);
  }
  {
    Variant v;
    for (size_t i = 0; i < common.size(); i += 2) v.types.emplace_back(common[i], 5);
    for (size_t i = 1; i < common.size(); i += 2) v.types.emplace_back(common[i], 4);
    for (const char* u : {"<|sep|>", "{{", "qqz"}) {
      if (base->PieceToId(u) == base->unk_id()) v.extra_user_defined.push_back(u);
    }
    REQUIRE(v.extra_user_defined.size() == 3);
    variants.emplace_back("unused + user-defined pieces", v);
  }
  const std::string tmp = (std::filesystem::temp_directory_path() /
                           ("ctx_spm_variant_" + std::to_string(::getpid()) + ".model"))
                              .string();
  for (const auto& [name, v] : variants) {
    INFO(name);
    const std::string bytes = MakeVariant(*base, base_bytes, v);
    {
      std::ofstream out(tmp, std::ios::binary);
      out << bytes;
    }
    std::string error;
    auto ref = SentencePieceBackend::Load(tmp, &error);
    INFO(error);
    REQUIRE(ref != nullptr);
    auto mine = SentencePieceModel::Parse(bytes);
    INFO(mine.status().ToString());
    REQUIRE(mine.ok());
    CompareAll(*mine, *ref, /*full=*/false);
    if (!v.extra_user_defined.empty()) {
      const std::string t = "x<|sep|>y {{qqz}} qqz{{{";
      CHECK(mine->Encode(t) == RefEncode(*ref, t));
    }
  }
  std::filesystem::remove(tmp);
}

TEST_CASE("Built-in reader refuses malformed and unsupported models with clear errors") {
  const std::string bytes = ReadFile(kSource + "/models/tiny-llama/tokenizer.model");
  SECTION("empty") {
    auto m = SentencePieceModel::Parse("");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("truncated anywhere: an error or a smaller model, never a crash") {
    for (size_t n = 1; n < bytes.size(); n += 997) {
      auto m = SentencePieceModel::Parse(absl::string_view(bytes).substr(0, n));
      if (m.ok()) {
        CHECK(m->size() <= 8192);
        (void)m->Encode("smoke test");
      } else {  // malformed, or cut before the trainer spec says BPE
        CHECK((m.status().code() == absl::StatusCode::kInvalidArgument ||
               m.status().code() == absl::StatusCode::kUnimplemented));
      }
    }
  }
  SECTION("flipped bytes never crash") {
    std::mt19937 rng(3);
    for (int n = 0; n < 200; ++n) {
      std::string b = bytes;
      for (int k = 0; k < 8; ++k) b[rng() % b.size()] = static_cast<char>(rng());
      auto m = SentencePieceModel::Parse(b);
      if (m.ok()) (void)m->Decode(m->Encode("smoke test \xFF"));
    }
  }
  SECTION("a Unigram model") {
    std::string model;
    std::string piece;
    PutBytes(1, "<unk>", &piece);
    PutKey(3, 0, &piece);
    PutVarint(2, &piece);
    PutBytes(1, piece, &model);
    std::string trainer;
    PutKey(3, 0, &trainer);
    PutVarint(1, &trainer);
    PutBytes(2, trainer, &model);
    auto m = SentencePieceModel::Parse(model);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == absl::StatusCode::kUnimplemented);
    CHECK(m.status().message().find("only BPE") != std::string::npos);
  }
  SECTION("a missing file") {
    auto m = SentencePieceModel::Load(kSource + "/models/no-such/tokenizer.model");
    CHECK(m.status().code() == absl::StatusCode::kNotFound);
  }
}

}  // namespace
}  // namespace ctx::tokenizer
