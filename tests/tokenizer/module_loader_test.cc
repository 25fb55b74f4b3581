// The one SentencePiece module loader (common/tokenizer/module_loader.h, tokenizer_api.h): the
// tokenizer loaded through libctx_tokenizer_module.so gives the same ids, text and stream
// pieces as ctx_tokenizer linked directly, and loading failures are clear errors.
#include "common/tokenizer/module_loader.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/tokenizer/stream_decoder.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/tokenizer_api.h"

namespace ctx::tokenizer {
namespace {

const std::string kModelDir = std::string(CTX_SOURCE_DIR) + "/models/tiny-llama";
const std::string kBinDir = std::string(CTX_BINARY_DIR) + "/bin";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("The tokenizer module matches the linked tokenizer on the long documents") {
  auto module = LoadTokenizerModule(kModelDir, kBinDir);
  INFO(module.status().ToString());
  REQUIRE(module.ok());
  auto linked = Tokenizer::LoadFromModelDir(kModelDir);
  REQUIRE(linked.ok());
  const TokenizerApi& m = **module;
  const Tokenizer& l = **linked;
  CHECK(m.bos_id() == l.bos_id());
  CHECK(m.eos_id() == l.eos_id());
  CHECK(m.vocab_size() == l.vocab_size());

  int docs = 0;
  size_t tokens = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(CTX_SOURCE_DIR) + "/tests/data/long_docs")) {
    const std::string text = ReadFile(entry.path().string());
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
    ++docs;
  }
  CHECK(docs >= 4);
  CHECK(tokens > 1000);

  // Out-of-vocabulary ids are an error, not a crash, across the module boundary.
  std::string text, error;
  CHECK_FALSE(m.Decode({1, 1 << 20}, &text, &error));
  CHECK_FALSE(error.empty());
}

TEST_CASE("Module loading failures name what went wrong") {
  SECTION("a missing module lists the paths tried") {
    auto r = OpenModuleSymbol("libctx_no_such_module.so", kLoadTokenizerSymbol, {kBinDir});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(r.status().message().find(kBinDir + "/libctx_no_such_module.so (missing)") !=
          std::string::npos);
  }
  SECTION("a module without the entry point") {
    auto r = OpenModuleSymbol(kTokenizerModuleName, "ctx_no_such_symbol", {kBinDir});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(r.status().message().find("has no entry point ctx_no_such_symbol") != std::string::npos);
  }
  SECTION("a file that is not a shared object") {
    auto r = OpenModuleSymbol(kModelDir + "/config.json", kLoadTokenizerSymbol);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("config.json (") != std::string::npos);
  }
  SECTION("a model directory without a tokenizer") {
    auto r = LoadTokenizerModule(std::string(CTX_SOURCE_DIR) + "/tests/data", kBinDir);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(r.status().message().find("tokenizer of ") != std::string::npos);
  }
}

}  // namespace
}  // namespace ctx::tokenizer
