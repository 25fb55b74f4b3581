// Config parsing/validation, checkpoint errors, fingerprints.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "common/model/llama_config.h"
#include "test_util.h"

namespace ctx::model {
namespace {

namespace fs = std::filesystem;
using testing::GetModel;
using testing::ModelDir;

const char kGoodConfig[] = R"({"model_type":"llama","hidden_size":64,"intermediate_size":160,
  "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":8192,
  "max_position_embeddings":2048,"rms_norm_eps":1e-5,"rope_parameters":{"rope_type":"default",
  "rope_theta":500000.0},"bos_token_id":1,"eos_token_id":[2, 7],"tie_word_embeddings":true})";

TEST_CASE("LlamaConfig parses fields, defaults head_dim and reads rope_parameters") {
  auto c = ParseLlamaConfig(kGoodConfig);
  REQUIRE(c.ok());
  CHECK(c->hidden_size == 64);
  CHECK(c->head_dim == 16);  // default hidden / heads
  CHECK(c->group_size() == 2);
  CHECK(c->rope_theta == 500000.0);
  CHECK(c->eos_token_id == 2);
  CHECK(c->tie_word_embeddings);
  auto g = ParseLlamaConfig(kGoodConfig, R"({"eos_token_id": 5})");
  REQUIRE(g.ok());
  CHECK(g->eos_token_id == 5);

  auto tiny = LoadLlamaConfig(ModelDir("tiny-llama"));
  REQUIRE(tiny.ok());
  CHECK(tiny->hidden_size == 384);
  CHECK(tiny->num_layers == 6);
  CHECK(tiny->num_kv_heads == 2);
  CHECK(tiny->head_dim == 64);
  CHECK(tiny->rope_theta == 10000.0);
  CHECK_FALSE(tiny->tie_word_embeddings);
}

TEST_CASE("Bad configs give clear InvalidArgument errors") {
  struct Bad {
    std::string json;
    std::string mentions;
  };
  const std::vector<Bad> bad = {
      {"not json", "JSON"},
      {R"({"hidden_size":64})", "intermediate_size"},
      {R"({"model_type":"bert","hidden_size":64})", "model_type"},
      {std::string(kGoodConfig)
           .replace(std::string(kGoodConfig).find("\"num_key_value_heads\":2"), 23,
                    "\"num_key_value_heads\":3"),
       "multiple"},
      {std::string(kGoodConfig)
           .replace(std::string(kGoodConfig).find("\"hidden_size\":64"), 16, "\"hidden_size\":-64"),
       "hidden_size"},
      {std::string(kGoodConfig)
           .replace(std::string(kGoodConfig).find("\"vocab_size\":8192"), 17,
                    "\"vocab_size\":\"big\""),
       "vocab_size"},
      {std::string(kGoodConfig)
           .replace(std::string(kGoodConfig).find("\"bos_token_id\":1"), 16,
                    "\"bos_token_id\":9000"),
       "bos_token_id"},
  };
  for (const Bad& b : bad) {
    auto c = ParseLlamaConfig(b.json);
    INFO(b.json);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    INFO(c.status().message());
    CHECK(std::string(c.status().message()).find(b.mentions) != std::string::npos);
  }
}

// A scratch copy of a model directory whose files the test may break.
struct ScratchModel {
  explicit ScratchModel(const std::string& model) {
    dir = fs::path(CTX_BINARY_DIR) / "tests" / "model" / ("scratch-" + model);
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(ModelDir(model))) {
      fs::copy_file(e.path(), dir / e.path().filename());
    }
  }
  ~ScratchModel() { fs::remove_all(dir); }
  fs::path dir;
};

TEST_CASE("Bad checkpoints give clear errors, never a crash") {
  SECTION("missing directory") {
    auto m = Model::Load("/nonexistent/model");
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == absl::StatusCode::kFailedPrecondition);
  }
  SECTION("truncated shard") {
    ScratchModel s("rand-llama");
    fs::resize_file(s.dir / "model-00002-of-00002.safetensors", 4096);
    auto m = Model::Load(s.dir.string());
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == absl::StatusCode::kFailedPrecondition);
  }
  SECTION("config disagrees with tensor shapes") {
    ScratchModel s("rand-llama");
    std::ifstream in(s.dir / "config.json");
    std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    json.replace(json.find("\"intermediate_size\": 160"), 24, "\"intermediate_size\": 128");
    std::ofstream(s.dir / "config.json") << json;
    auto m = Model::Load(s.dir.string());
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == absl::StatusCode::kFailedPrecondition);
    INFO(m.status().message());
    CHECK(std::string(m.status().message()).find("gate_proj") != std::string::npos);
  }
  SECTION("missing shard") {
    ScratchModel s("rand-llama");
    fs::remove(s.dir / "model-00001-of-00002.safetensors");
    auto m = Model::Load(s.dir.string());
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == absl::StatusCode::kFailedPrecondition);
  }
}

TEST_CASE("Fingerprint is stable across loads and differs between models") {
  auto a = Model::Load(ModelDir("rand-llama"));
  REQUIRE(a.ok());
  const Model& b = GetModel("rand-llama");
  const Model& tiny = GetModel("tiny-llama");
  CHECK((*a)->fingerprint() == b.fingerprint());
  CHECK_FALSE(b.fingerprint() == tiny.fingerprint());
  CHECK(b.fingerprint().Hex().size() == 32);
  CHECK(b.fingerprint().Hex() != std::string(32, '0'));
}

}  // namespace
}  // namespace ctx::model
