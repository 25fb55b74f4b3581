// The one SentencePiece module loader (common/tokenizer/module_loader.h) and the in-process
// tokenizer interface (tokenizer_api.h): a module built with ctx_add_sentencepiece_module is
// found and its entry point runs libsentencepiece; loading failures are clear errors; the
// TokenizerApi the services use gives the same ids, text and stream pieces as Tokenizer.
#include "common/tokenizer/module_loader.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/tokenizer/sentencepiece_model.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/tokenizer_api.h"

namespace ctx::tokenizer {
namespace {

const std::string kModelDir = std::string(CTX_SOURCE_DIR) + "/models/tiny-llama";
const std::string kBinDir = std::string(CTX_BINARY_DIR) + "/bin";
constexpr const char* kTestModule = "libctx_test_spm_module.so";
constexpr const char* kTestEntry = "ctx_test_spm_encode";
using TestEncodeFn = bool (*)(const char*, const char*, std::vector<int>*, std::string*);

std::vector<std::string> LongDocs() {
  std::vector<std::string> docs;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(CTX_SOURCE_DIR) + "/tests/data/long_docs")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    docs.push_back(ss.str());
  }
  REQUIRE(docs.size() >= 4);
  return docs;
}

TEST_CASE("A module built with the SentencePiece recipe loads and runs libsentencepiece") {
  auto encode = OpenModuleEntry<TestEncodeFn>(kTestModule, kTestEntry, {kBinDir});
  INFO(encode.status().ToString());
  REQUIRE(encode.ok());
  auto builtin = SentencePieceModel::Load(kModelDir + "/tokenizer.model");
  REQUIRE(builtin.ok());
  for (const std::string& doc : LongDocs()) {
    std::vector<int> ids;
    std::string error;
    REQUIRE((*encode)((kModelDir + "/tokenizer.model").c_str(), doc.c_str(), &ids, &error));
    CHECK(ids == builtin->Encode(doc));
  }
  // Opening it again returns the same entry point (the module stays loaded).
  auto again = OpenModuleEntry<TestEncodeFn>(kBinDir + "/" + kTestModule, kTestEntry);
  REQUIRE(again.ok());
  CHECK(*again == *encode);
}

TEST_CASE("Module loading failures name what went wrong") {
  SECTION("a missing module lists the paths tried") {
    auto r = OpenModuleSymbol("libctx_no_such_module.so", kTestEntry, {kBinDir});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(r.status().message().find(kBinDir + "/libctx_no_such_module.so (missing)") !=
          std::string::npos);
  }
  SECTION("a module without the entry point") {
    auto r = OpenModuleSymbol(kTestModule, "ctx_no_such_symbol", {kBinDir});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(r.status().message().find("has no entry point ctx_no_such_symbol") != std::string::npos);
  }
  SECTION("a file that is not a shared object") {
    auto r = OpenModuleSymbol(kModelDir + "/config.json", kTestEntry);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("config.json (") != std::string::npos);
  }
}

TEST_CASE("TokenizerApi matches Tokenizer on the long documents") {
  auto api = LoadTokenizer(kModelDir);
  INFO(api.status().ToString());
  REQUIRE(api.ok());
  auto linked = Tokenizer::LoadFromModelDir(kModelDir);
  REQUIRE(linked.ok());
  const TokenizerApi& m = **api;
  const Tokenizer& l = **linked;
  CHECK(m.bos_id() == l.bos_id());
  CHECK(m.eos_id() == l.eos_id());
  CHECK(m.vocab_size() == l.vocab_size());
  size_t tokens = 0;
  for (const std::string& text : LongDocs()) {
    std::vector<int32_t> ids;
    std::string error;
    REQUIRE(m.Encode(text, true, &ids, &error));
    auto want = l.Encode(text, true);
    REQUIRE(want.ok());
    CHECK(ids == *want);
    tokens += ids.size();
    std::string back;
    REQUIRE(m.Decode(ids, &back, &error));
    auto want_text = l.Decode(*want);
    REQUIRE(want_text.ok());
    CHECK(back == *want_text);
    // Streamed pieces (after the BOS) concatenate to the whole decode.
    std::unique_ptr<StreamDecoderApi> dec = m.NewStreamDecoder(true);
    std::string streamed;
    for (size_t i = 1; i < ids.size(); ++i) streamed += dec->Push(ids[i]);
    streamed += dec->Flush();
    CHECK(streamed == back);
  }
  CHECK(tokens > 1000);
  std::string text, error;
  CHECK_FALSE(m.Decode({1, 1 << 20}, &text, &error));  // out of vocabulary: an error
  CHECK_FALSE(error.empty());

  auto missing = LoadTokenizer(std::string(CTX_SOURCE_DIR) + "/tests/data");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(missing.status().message().find("tokenizer of ") != std::string::npos);
}

}  // namespace
}  // namespace ctx::tokenizer
