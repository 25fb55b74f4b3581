// Prefill on top of a prefix, KV export/import, truncation. "Equal" for logits means within
// tol * max(1, |logit|): different block shapes change the BLAS summation order. tol is 1e-5
// for rand-llama; tiny-llama (6 layers, logits up to ~30) measures ~1.1e-5, so 2e-5.
#include "common/model/kv_cache.h"

#include <catch2/catch.hpp>

#include "common/model/generate.h"
#include "test_util.h"

namespace ctx::model {
namespace {

using testing::GetModel;
using testing::Golden;
using testing::MaxAbsDiff;

TEST_CASE("Prefill 0..40 then 40..64 on top equals one-shot prefill") {
  for (auto [name, tol] :
       {std::pair<const char*, double>{"rand-llama", 1e-5}, {"tiny-llama", 2e-5}}) {
    SECTION(name) {
      const Model& model = GetModel(name);
      const std::vector<int32_t> ids = Golden(name).Ids("input_ids");
      std::span<const int32_t> all(ids);
      KvCache one = model.NewKvCache();
      std::vector<float> logits_one;
      REQUIRE(model.Forward(all, one, Logits::kAll, &logits_one).ok());

      KvCache two = model.NewKvCache();
      std::vector<float> logits_a, logits_b;
      REQUIRE(model.Forward(all.first(40), two, Logits::kAll, &logits_a).ok());
      CHECK(two.length() == 40);
      REQUIRE(model.Forward(all.subspan(40), two, Logits::kAll, &logits_b).ok());
      CHECK(two.length() == 64);
      const size_t V = model.config().vocab_size;
      CHECK(testing::MaxScaledDiff(logits_a.data(), logits_one.data(), 40 * V) < tol);
      CHECK(testing::MaxScaledDiff(logits_b.data(), logits_one.data() + 40 * V, 24 * V) < tol);
      auto kv_one = one.Export(0, 64, tensor::DType::kF32);
      auto kv_two = two.Export(0, 64, tensor::DType::kF32);
      REQUIRE(kv_one.ok());
      REQUIRE(kv_two.ok());
      const size_t n = kv_one->size() / 4;
      CHECK(MaxAbsDiff(reinterpret_cast<const float*>(kv_one->data()),
                       reinterpret_cast<const float*>(kv_two->data()), n) < 1e-5);

      // Small internal blocks (7 tokens per pass) give the same result too.
      KvCache blocked = model.NewKvCache();
      std::vector<float> logits_blocked;
      ForwardOptions opt;
      opt.block_tokens = 7;
      REQUIRE(model.Forward(all, blocked, Logits::kAll, &logits_blocked, opt).ok());
      CHECK(testing::MaxScaledDiff(logits_blocked.data(), logits_one.data(), 64 * V) < tol);
    }
  }
}

TEST_CASE("KV export -> import round trip: F32 exact, F16/BF16 within rounding") {
  const Model& model = GetModel("tiny-llama");
  const std::vector<int32_t> ids = Golden("tiny-llama").Ids("input_ids");
  KvCache cache = model.NewKvCache();
  REQUIRE(model.Forward(ids, cache, Logits::kNone, nullptr).ok());

  // Export in two chunks [0, 40) and [40, 64), import them into a fresh cache.
  auto a = cache.Export(0, 40, tensor::DType::kF32);
  auto b = cache.Export(40, 64, tensor::DType::kF32);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->size() == cache.ChunkBytes(40, tensor::DType::kF32));
  KvCache copy = model.NewKvCache();
  REQUIRE(copy.Import(0, 40, tensor::DType::kF32, *a).ok());
  REQUIRE(copy.Import(40, 64, tensor::DType::kF32, *b).ok());
  CHECK(copy.length() == 64);
  auto whole = cache.Export(0, 64, tensor::DType::kF32);
  auto whole_copy = copy.Export(0, 64, tensor::DType::kF32);
  REQUIRE(whole.ok());
  REQUIRE(whole_copy.ok());
  CHECK(*whole == *whole_copy);  // bit-exact

  // The chunk layout: layer 1's V block of [40, 64) is the cache's rows 40..63.
  const int KVD = model.config().kv_dim();
  const float* chunk = reinterpret_cast<const float*>(b->data());
  const size_t block = static_cast<size_t>(24) * KVD;
  CHECK(std::equal(chunk + 3 * block, chunk + 4 * block, cache.values(1) + 40 * KVD));

  for (tensor::DType dt : {tensor::DType::kF16, tensor::DType::kBF16}) {
    auto half = cache.Export(0, 64, dt);
    REQUIRE(half.ok());
    CHECK(half->size() == whole->size() / 2);
    KvCache h = model.NewKvCache();
    REQUIRE(h.Import(0, 64, dt, *half).ok());
    auto back = h.Export(0, 64, tensor::DType::kF32);
    REQUIRE(back.ok());
    const float* x = reinterpret_cast<const float*>(whole->data());
    const float* y = reinterpret_cast<const float*>(back->data());
    const double rel = dt == tensor::DType::kF16 ? 1.0 / 1024 : 1.0 / 128;
    size_t bad = 0;
    for (size_t i = 0; i < whole->size() / 4; ++i) {
      bad += std::fabs(x[i] - y[i]) > rel * std::fabs(x[i]) + 1e-6;
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("Export -> import -> continue equals uninterrupted generation") {
  const Model& model = GetModel("tiny-llama");
  Golden g("tiny-llama");
  const std::vector<int32_t> ids = g.Ids("input_ids");
  GenerateOptions opt;
  opt.max_new_tokens = 12;
  KvCache direct = model.NewKvCache();
  auto want = Generate(model, ids, direct, opt);
  REQUIRE(want.ok());

  KvCache source = model.NewKvCache();
  REQUIRE(model.Forward(ids, source, Logits::kNone, nullptr).ok());
  auto chunk = source.Export(0, 64, tensor::DType::kF32);
  REQUIRE(chunk.ok());
  KvCache imported = model.NewKvCache();
  REQUIRE(imported.Import(0, 64, tensor::DType::kF32, *chunk).ok());
  auto got = Generate(model, ids, imported, opt);  // cache covers the whole context
  REQUIRE(got.ok());
  CHECK(got->reused_tokens == 63);
  CHECK(got->prefilled_tokens == 1);
  CHECK(got->tokens == want->tokens);

  // A mix: KV for the first 40 tokens, the rest prefilled on top.
  auto part = source.Export(0, 40, tensor::DType::kF16);
  REQUIRE(part.ok());
  KvCache mixed = model.NewKvCache();
  REQUIRE(mixed.Import(0, 40, tensor::DType::kF16, *part).ok());
  auto mix = Generate(model, ids, mixed, opt);
  REQUIRE(mix.ok());
  CHECK(mix->reused_tokens == 40);
  CHECK(mix->prefilled_tokens == 24);
  CHECK(
      std::equal(mix->tokens.begin(), mix->tokens.begin() + 8, g.Ids("decode_input_ids").begin()));
}

TEST_CASE("KV import and export reject bad ranges and sizes") {
  KvCache cache(2, 32, 100);
  std::vector<std::byte> bytes(cache.ChunkBytes(10, tensor::DType::kF16));
  CHECK(cache.Import(0, 10, tensor::DType::kF16, bytes).ok());
  CHECK(cache.length() == 10);
  // Wrong size.
  auto s = cache.Import(10, 20, tensor::DType::kF32, bytes);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()).find("bytes") != std::string::npos);
  // A hole: tokens [10, 20) are missing.
  CHECK(cache.Import(20, 30, tensor::DType::kF16, bytes).code() ==
        absl::StatusCode::kInvalidArgument);
  // Past capacity, reversed range, non-float dtype.
  CHECK_FALSE(cache.Import(95, 105, tensor::DType::kF16, bytes).ok());
  CHECK_FALSE(cache.Import(10, 5, tensor::DType::kF16, bytes).ok());
  CHECK_FALSE(cache.Import(10, 20, tensor::DType::kI64, bytes).ok());
  CHECK_FALSE(cache.Export(0, 11, tensor::DType::kF32).ok());
  CHECK_FALSE(cache.Export(-1, 5, tensor::DType::kF32).ok());
  CHECK(cache.Export(3, 3, tensor::DType::kF32)->empty());
  // Truncate.
  CHECK(cache.Truncate(4).ok());
  CHECK(cache.length() == 4);
  CHECK_FALSE(cache.Truncate(5).ok());
  CHECK(cache.Truncate(0).ok());
}

}  // namespace
}  // namespace ctx::model
