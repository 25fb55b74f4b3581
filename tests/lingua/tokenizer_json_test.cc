// tokenizer.json (HF Unigram, XLM-R fairseq order) -> sentencepiece model. The official
// checkpoint's file is not bundled, so the test converts the bundled sentencepiece vocabulary
// into that layout and checks the id mapping, tokenisation round trip and error handling.
#include "common/lingua/tokenizer_json.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "common/lingua/spm_model.h"
#include "common/lingua/xlmr_tokenizer.h"
#include "nlohmann/json.hpp"

namespace ctx::lingua {
namespace {

const std::string kModels = std::string(CTX_SOURCE_DIR) + "/models/";

nlohmann::json BundledAsTokenizerJson() {
  SpmModel sp;
  REQUIRE(sp.Load(kModels + "tiny-lingua2/sentencepiece.bpe.model").empty());
  nlohmann::json vocab =
      nlohmann::json::array({{"<s>", 0.0}, {"<pad>", 0.0}, {"</s>", 0.0}, {"<unk>", 0.0}});
  for (int i = 3; i < sp.PieceSize(); ++i) vocab.push_back({sp.IdToPiece(i), sp.GetScore(i)});
  vocab.push_back({"<mask>", 0.0});
  nlohmann::json j;
  j["model"] = {{"type", "Unigram"}, {"unk_id", 3}, {"vocab", vocab}, {"byte_fallback", true}};
  j["normalizer"] = nullptr;
  return j;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = std::string(CTX_BINARY_DIR) + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST_CASE("tokenizer.json Unigram vocabulary loads with the fairseq id mapping", "[lingua]") {
  auto path = WriteTemp("lingua_tokenizer_test.json", BundledAsTokenizerJson().dump());
  auto tj = XlmrTokenizer::LoadFromTokenizerJson(path);
  INFO(tj.status().ToString());
  REQUIRE(tj.ok());
  auto ref = XlmrTokenizer::Load(kModels + "tiny-lingua2/sentencepiece.bpe.model");
  REQUIRE(ref.ok());
  CHECK((*tj)->mask_id() == 8193);
  CHECK((*tj)->added_token_base() == 8194);
  for (int32_t id : {0, 1, 2, 3, 4, 14, 100, 589, 5352, 8192, 8193, 8194, 8293}) {
    INFO("id " << id);
    CHECK((*tj)->IdToPiece(id) == (*ref)->IdToPiece(id));
    CHECK((*tj)->PieceToId((*ref)->IdToPiece(id)) == id);
  }
  auto pieces = (*tj)->Tokenize("Hello world, cgroup v2[NEW5] done");
  std::vector<std::string> strs;
  for (const auto& p : pieces) {
    CHECK(p.id != XlmrTokenizer::kUnk);
    CHECK(p.id == (*ref)->PieceToId(p.text));
    strs.push_back(p.text);
  }
  CHECK((*tj)->PiecesToString(strs) == "Hello world, cgroup v2[NEW5] done");
}

TEST_CASE("tokenizer.json errors are clear", "[lingua]") {
  auto j = BundledAsTokenizerJson();
  j["model"]["type"] = "BPE";
  CHECK(SpmModelProtoFromTokenizerJson(j.dump()).status().code() ==
        absl::StatusCode::kInvalidArgument);
  auto k = BundledAsTokenizerJson();
  std::swap(k["model"]["vocab"][0], k["model"]["vocab"][3]);
  auto st = SpmModelProtoFromTokenizerJson(k.dump()).status();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find("fairseq order") != std::string::npos);
  CHECK(SpmModelProtoFromTokenizerJson("{not json").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(XlmrTokenizer::LoadFromTokenizerJson(kModels + "nope.json").status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(*Base64Decode("aGVsbG8=") == "hello");
  CHECK(*Base64Decode("aGk") == "hi");
  CHECK_FALSE(Base64Decode("a*b").ok());
}

}  // namespace
}  // namespace ctx::lingua
