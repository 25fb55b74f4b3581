#include "common/codec/profile.h"

#include <catch2/catch.hpp>
#include <cmath>

#include "common/codec/level_table.h"
#include "tests/codec/golden_kv.h"

namespace ctx::codec {
namespace {

using testing::LoadGoldenKv;
using testing::TestFingerprint;

TEST_CASE("default level table: 6 levels for 6 layers, deep K protected, r0 drops layer 0",
          "[profile]") {
  const auto levels = DefaultLevels(6);
  REQUIRE(levels.size() == 6);
  CHECK(levels[2].name == "OB");
  CHECK(levels[2].key_bins == std::vector<uint16_t>{6, 8, 16, 32, 32, 32});
  CHECK(levels[3].key_bins[0] == 0);
  CHECK(levels[3].value_bins[0] == 0);
  CHECK(levels[DefaultLevelIndex()].name == "OC-r0");
  const auto sent = DefaultLevels(6, /*send_layer0=*/true);
  CHECK(sent[3].name == "OC");
  CHECK(sent[3].key_bins[0] == 4);
  // Other depths map by relative position and never drop a layer other than 0.
  for (int layers : {1, 2, 12, 32}) {
    for (const LevelSpec& l : DefaultLevels(layers)) {
      REQUIRE(static_cast<int>(l.key_bins.size()) == layers);
      for (int i = 1; i < layers; ++i) CHECK(l.key_bins[i] > 0);
      for (int i = 1; i < layers; ++i) CHECK(l.value_bins[i] > 0);
      CHECK(l.key_bins[layers - 1] >= l.key_bins[0]);
    }
  }
}

TEST_CASE("profile built from golden KV serializes and parses back identically", "[profile]") {
  const auto kv = LoadGoldenKv();
  const auto fp = TestFingerprint();
  ProfileBuilder builder(fp, kv.geometry, DefaultLevels(kv.geometry.layers), DefaultLevelIndex());
  REQUIRE(builder.AddChunk(kv.View(fp)).ok());
  CHECK_FALSE(builder.AddChunk(kv.View(TestFingerprint(9))).ok());
  CodecProfile p = builder.Build();
  REQUIRE(ValidateProfile(p).ok());
  CHECK(!p.tables.empty());
  for (const LevelSpec& l : p.levels) CHECK(l.bits_per_element > 0.5);
  // Fewer bins, fewer bits (levels 1..5 are ordered by size).
  for (size_t i = 2; i < p.levels.size(); ++i) {
    CHECK(p.levels[i].bits_per_element < p.levels[i - 1].bits_per_element);
  }
  p.levels[1].kl_nats = 0.0039;
  const std::string bytes = SerializeProfile(p);
  auto back = ParseProfile(bytes);
  REQUIRE(back.ok());
  CHECK(back->fingerprint == p.fingerprint);
  CHECK(back->geometry == p.geometry);
  CHECK(back->default_level == p.default_level);
  REQUIRE(back->levels.size() == p.levels.size());
  CHECK(back->levels[1].kl_nats == 0.0039);
  CHECK(std::isnan(back->levels[1].delta_ppl_pct));
  CHECK(back->levels[3].key_bins == p.levels[3].key_bins);
  REQUIRE(back->tables.size() == p.tables.size());
  CHECK(back->tables[0].freqs == p.tables[0].freqs);
  CHECK(back->TablesHash() == p.TablesHash());
  CHECK(SerializeProfile(*back) == bytes);

  // Measurements do not change the tables hash; tables do.
  CodecProfile q = *back;
  q.levels[0].kl_nats = 1;
  CHECK(q.TablesHash() == p.TablesHash());
  q.tables[0].freqs[0] += 1;
  q.tables[0].freqs[1] -= 1;
  CHECK(q.TablesHash() != p.TablesHash());

  // Truncations and byte flips are rejected.
  for (size_t cut = 0; cut < bytes.size(); cut += 1 + cut / 7) {
    CHECK_FALSE(ParseProfile(bytes.substr(0, cut)).ok());
  }
  for (size_t i = 0; i < bytes.size(); i += 97) {
    std::string bad = bytes;
    bad[i] ^= 0x20;
    CHECK_FALSE(ParseProfile(bad).ok());
  }
}

}  // namespace
}  // namespace ctx::codec
