// The forward pass against HF transformers' outputs (models/golden, see models/README.md).
#include <catch2/catch.hpp>

#include "common/model/generate.h"
#include "test_util.h"

namespace ctx::model {
namespace {

using testing::GetModel;
using testing::Golden;
using testing::MaxAbsDiff;

struct Case {
  const char* name;
  double logits_tol;  // README: ~1e-4 for the random model, ~1e-3 for tiny-llama logits
  double kv_tol;
};

const Case kCases[] = {{"rand-llama", 1e-4, 1e-4}, {"tiny-llama", 1e-3, 1e-4}};

TEST_CASE("Prefill logits and every layer's K/V match the HF golden") {
  for (const Case& tc : kCases) {
    SECTION(tc.name) {
      const Model& model = GetModel(tc.name);
      const LlamaConfig& c = model.config();
      Golden g(tc.name);
      const std::vector<int32_t> ids = g.Ids("input_ids");
      REQUIRE(ids.size() == 64);
      KvCache cache = model.NewKvCache();
      std::vector<float> logits;
      REQUIRE(model.Forward(ids, cache, Logits::kAll, &logits).ok());
      CHECK(cache.length() == 64);
      const std::vector<float> want = g.Floats("logits");
      REQUIRE(logits.size() == want.size());
      const double logit_diff = MaxAbsDiff(logits.data(), want.data(), want.size());
      INFO(tc.name << " max |logits diff| over 64 positions = " << logit_diff);
      CHECK(logit_diff < tc.logits_tol);

      const std::vector<float> kv_want = testing::GoldenKvChunk(g, c, 64);
      auto kv = cache.Export(0, 64, tensor::DType::kF32);
      REQUIRE(kv.ok());
      REQUIRE(kv->size() == kv_want.size() * 4);
      const float* kv_got = reinterpret_cast<const float*>(kv->data());
      const size_t block = static_cast<size_t>(64) * c.kv_dim();
      for (int l = 0; l < c.num_layers; ++l) {
        for (int k = 0; k < 2; ++k) {
          const size_t off = (static_cast<size_t>(l) * 2 + k) * block;
          const double d = MaxAbsDiff(kv_got + off, kv_want.data() + off, block);
          INFO(tc.name << " layer " << l << (k ? " V" : " K") << " max diff " << d);
          CHECK(d < tc.kv_tol);
        }
      }
    }
  }
}

TEST_CASE("Greedy decode steps reproduce the golden logits and ids") {
  for (const Case& tc : kCases) {
    SECTION(tc.name) {
      const Model& model = GetModel(tc.name);
      const int V = model.config().vocab_size;
      Golden g(tc.name);
      const std::vector<int32_t> ids = g.Ids("input_ids");
      const std::vector<int32_t> decode_ids = g.Ids("decode_input_ids");
      const std::vector<float> decode_logits = g.Floats("decode_logits");
      REQUIRE(decode_ids.size() == 8);

      KvCache cache = model.NewKvCache();
      std::vector<float> logits;
      REQUIRE(model.Forward(ids, cache, Logits::kLast, &logits).ok());
      CHECK(Argmax(logits) == decode_ids[0]);
      for (int k = 0; k < 8; ++k) {
        REQUIRE(model.Forward(std::span(&decode_ids[k], 1), cache, Logits::kLast, &logits).ok());
        const double d =
            MaxAbsDiff(logits.data(), decode_logits.data() + static_cast<size_t>(k) * V, V);
        INFO(tc.name << " decode step " << k << " max diff " << d);
        CHECK(d < tc.logits_tol);
        if (k + 1 < 8) CHECK(Argmax(logits) == decode_ids[k + 1]);
      }
      CHECK(cache.length() == 72);

      // The same through Generate (greedy, streaming callback).
      KvCache fresh = model.NewKvCache();
      std::vector<int32_t> streamed;
      GenerateOptions opt;
      opt.max_new_tokens = 8;
      opt.stop_at_eos = false;
      auto result = Generate(model, ids, fresh, opt, [&](int32_t t) {
        streamed.push_back(t);
        return true;
      });
      REQUIRE(result.ok());
      CHECK(result->tokens == decode_ids);
      CHECK(streamed == decode_ids);
      CHECK(result->finish == FinishReason::kMaxTokens);
    }
  }
}

TEST_CASE("Injecting the golden KV into a fresh cache reproduces the decode logits") {
  for (const Case& tc : kCases) {
    SECTION(tc.name) {
      const Model& model = GetModel(tc.name);
      const int V = model.config().vocab_size;
      Golden g(tc.name);
      const std::vector<int32_t> decode_ids = g.Ids("decode_input_ids");
      const std::vector<float> decode_logits = g.Floats("decode_logits");
      const std::vector<float> kv = testing::GoldenKvChunk(g, model.config(), 64);

      KvCache cache = model.NewKvCache();
      REQUIRE(
          cache.Import(0, 64, tensor::DType::kF32, std::as_bytes(std::span<const float>(kv))).ok());
      CHECK(cache.length() == 64);
      std::vector<float> logits;
      for (int k = 0; k < 8; ++k) {
        REQUIRE(model.Forward(std::span(&decode_ids[k], 1), cache, Logits::kLast, &logits).ok());
        const double d =
            MaxAbsDiff(logits.data(), decode_logits.data() + static_cast<size_t>(k) * V, V);
        INFO(tc.name << " injected-KV decode step " << k << " max diff " << d);
        CHECK(d < tc.logits_tol);
      }
    }
  }
}

}  // namespace
}  // namespace ctx::model

namespace ctx::model {
namespace {

TEST_CASE("Decode reads exact bfloat16 weight copies only when they are exact") {
  CHECK(testing::GetModel("tiny-llama").weights().has_bf16());        // BF16 checkpoint
  CHECK_FALSE(testing::GetModel("rand-llama").weights().has_bf16());  // random F32 weights
  const Model& model = testing::GetModel("tiny-llama");
  const std::vector<int32_t> ids = testing::Golden("tiny-llama").Ids("input_ids");
  std::vector<float> a, b;
  for (bool bf16 : {true, false}) {
    KvCache cache = model.NewKvCache();
    ForwardOptions opt;
    opt.bf16_decode = bf16;
    REQUIRE(model.Forward(std::span(ids).first(63), cache, Logits::kNone, nullptr, opt).ok());
    REQUIRE(
        model.Forward(std::span(ids).subspan(63), cache, Logits::kLast, bf16 ? &a : &b, opt).ok());
  }
  CHECK(testing::MaxScaledDiff(a.data(), b.data(), a.size()) < 1e-5);
}

}  // namespace
}  // namespace ctx::model
