// Layer-0 K/V recomputed from token ids equals the model's own layer-0 KV.
#include "common/model/layer0_kv.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>

#include "common/model/perf.h"
#include "tests/model/test_util.h"

namespace ctx::model {

TEST_CASE("Layer0KvComputer reproduces the forward pass's layer-0 keys and values") {
  const Model& m = testing::GetModel("tiny-llama");
  const std::vector<int32_t> ids = SyntheticTokens(200, m.config().vocab_size, 7);
  KvCache cache = m.NewKvCache(256);
  REQUIRE(m.Forward(ids, cache, Logits::kNone, nullptr).ok());

  Layer0KvComputer layer0(m);
  const int C = m.config().kv_dim();
  // Tokens [72, 200) on their own, at their real positions.
  const int a = 72, T = 128;
  std::vector<float> k(static_cast<size_t>(T) * C), v(k.size());
  REQUIRE(layer0.Compute(std::span<const int32_t>(ids).subspan(a, T), a, k.data(), C, v.data(), C)
              .ok());
  double max_k = 0, max_v = 0;
  for (size_t i = 0; i < k.size(); ++i) {
    max_k = std::max(max_k, double(std::fabs(k[i] - cache.keys(0)[a * C + i])));
    max_v = std::max(max_v, double(std::fabs(v[i] - cache.values(0)[a * C + i])));
  }
  INFO("max |dK| " << max_k << " max |dV| " << max_v);
  CHECK(max_k < 1e-5);
  CHECK(max_v < 1e-5);

  // Bad input: out-of-vocabulary id, positions past the model's context.
  const int32_t bad[] = {m.config().vocab_size};
  CHECK(layer0.Compute(bad, 0, k.data(), C, v.data(), C).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(layer0
            .Compute(std::span<const int32_t>(ids).subspan(0, 4),
                     m.config().max_position_embeddings - 2, k.data(), C, v.data(), C)
            .code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace ctx::model

namespace ctx::model {
// Not a test: in-process prefill of 1024 tokens, one shot vs 4 blocks of 256 on a prefix.
TEST_CASE("prefill 1024 one-shot vs blocks", "[.bench]") {
  const Model& m = testing::GetModel("tiny-llama");
  const std::vector<int32_t> ids = SyntheticTokens(1024, m.config().vocab_size, 3);
  for (int block : {1024, 256}) {
    KvCache cache = m.NewKvCache(1100);
    const auto t0 = std::chrono::steady_clock::now();
    for (int a = 0; a < 1024; a += block) {
      REQUIRE(
          m.Forward(std::span<const int32_t>(ids).subspan(a, block), cache, Logits::kNone, nullptr)
              .ok());
    }
    WARN("block " << block << ": "
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                  << " s");
  }
}
}  // namespace ctx::model
