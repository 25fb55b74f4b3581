#include "common/tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include "common/tokenizer/stream_decoder.h"

namespace ctx::tokenizer {
namespace {

const std::string kModels = std::string(CTX_SOURCE_DIR) + "/models";

std::unique_ptr<Tokenizer> LoadTiny() {
  auto t = Tokenizer::LoadFromModelDir(kModels + "/tiny-llama");
  REQUIRE(t.ok());
  return std::move(*t);
}

// Streams ids through a StreamDecoder and concatenates the chunks, checking every chunk is
// whole UTF-8 (no chunk ends inside a character).
std::string Stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool at_start) {
  StreamDecoder dec(tok, at_start);
  std::string all;
  for (int32_t id : ids) {
    auto chunk = dec.Push(id);
    REQUIRE(chunk.ok());
    std::string check;
    REQUIRE(AppendCompleteUtf8(*chunk, &check) == 0);
    REQUIRE(check == *chunk);
    all += *chunk;
  }
  all += dec.Flush();
  return all;
}

TEST_CASE("Tokenizer encodes the README example with BOS") {
  auto tok = LoadTiny();
  CHECK(tok->vocab_size() == 8192);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  auto ids = tok->Encode("Hello world\n  x = 12345", /*add_bos=*/false);
  REQUIRE(ids.ok());
  CHECK(*ids == std::vector<int32_t>{588, 391, 310, 5351, 13, 259, 8114, 466, 8079, 8120, 8125,
                                     8132, 8134, 8137});
  auto with_bos = tok->Encode("Hello world\n  x = 12345", /*add_bos=*/true);
  REQUIRE(with_bos.ok());
  REQUIRE(with_bos->size() == 15);
  CHECK((*with_bos)[0] == 1);
  CHECK(tok->IdToPiece(13) == "<0x0A>");
  auto text = tok->Decode(*with_bos);
  REQUIRE(text.ok());
  CHECK(*text == "Hello world\n  x = 12345");
}

TEST_CASE("Tokenizer rejects out-of-vocabulary ids") {
  auto tok = LoadTiny();
  std::vector<int32_t> bad = {5, 8192};
  auto text = tok->Decode(bad);
  REQUIRE_FALSE(text.ok());
  CHECK(text.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(tok->TokenBytes(-1).ok());
  StreamDecoder dec(*tok, false);
  CHECK_FALSE(dec.Push(99999).ok());
}

TEST_CASE("Tokenizer load errors are clear") {
  auto t = Tokenizer::LoadFromModelDir("/nonexistent/dir");
  REQUIRE_FALSE(t.ok());
  CHECK(t.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(t.status().message()).find("tokenizer.model") != std::string::npos);
}

TEST_CASE("Streaming detokenization equals Decode, multi-byte characters come out whole") {
  auto tok = LoadTiny();
  const std::string text = "naïve café — 日本語 🙂 done\n  x = 12345";
  auto ids = tok->Encode(text, /*add_bos=*/true);
  REQUIRE(ids.ok());
  // Byte-fallback pieces must be present for this to test anything.
  int byte_pieces = 0;
  for (int32_t id : *ids) byte_pieces += (id >= 3 && id <= 258);
  CHECK(byte_pieces >= 4);
  auto whole = tok->Decode(*ids);
  REQUIRE(whole.ok());
  CHECK(*whole == text);
  CHECK(Stream(*tok, *ids, /*at_start=*/true) == text);

  // Continuing after a prompt keeps the leading space of the first streamed piece.
  auto cont = tok->Encode("world", false);
  REQUIRE(cont.ok());
  CHECK(Stream(*tok, *cont, /*at_start=*/false) == " world");
}

TEST_CASE("StreamDecoder holds an incomplete character and flushes it as U+FFFD") {
  auto tok = LoadTiny();
  StreamDecoder dec(*tok, false);
  // "日" = E6 97 A5 -> byte pieces 3 + 0xE6, 3 + 0x97, 3 + 0xA5.
  auto a = dec.Push(3 + 0xE6);
  auto b = dec.Push(3 + 0x97);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->empty());
  CHECK(b->empty());
  auto c = dec.Push(3 + 0xA5);
  REQUIRE(c.ok());
  CHECK(*c == "\xE6\x97\xA5");
  REQUIRE(dec.Push(3 + 0xE6).ok());
  CHECK(dec.Flush() == "\xEF\xBF\xBD");
  // A stray continuation byte is replaced immediately.
  auto d = dec.Push(3 + 0x97);
  REQUIRE(d.ok());
  CHECK(*d == "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace ctx::tokenizer
