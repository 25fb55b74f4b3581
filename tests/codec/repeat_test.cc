// Repeat contexts (table mode 3): the repeat map, the profile's repeat tables, encode/decode
// equivalence with order-0 coding, SIMD vs portable decode, and rejection of bad maps.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/codec/byte_io.h"
#include "common/codec/codec.h"
#include "common/codec/level_table.h"
#include "common/codec/rans_decoder.h"
#include "common/codec/repeat_map.h"
#include "common/codec/wire_format.h"
#include "tests/codec/golden_kv.h"

namespace ctx::codec {
namespace {

using testing::Golden;
using testing::GoldenInSampleCodec;
using testing::GoldenKv;
using testing::TestFingerprint;

// Rebuilds a rans chunk with section `index` replaced (valid checksum).
std::string WithSection(const std::string& bytes, size_t index, const std::string& content) {
  auto parsed = ParseChunk(bytes);
  REQUIRE(parsed.ok());
  auto sections = ReadSections(parsed->payload, 6);
  REQUIRE(sections.ok());
  std::vector<std::string> parts;
  for (absl::string_view s : *sections) parts.emplace_back(s);
  parts[index] = content;
  std::string payload, out;
  WriteSections(parts, &payload);
  WriteChunk(parsed->header, payload, &out);
  return out;
}

TEST_CASE("repeat map: last earlier row of the same id, wire round trip, rejections",
          "[codec][repeat]") {
  const std::vector<int32_t> ids = {5, 7, 5, 9, 7, 5, 300000};
  const std::vector<int32_t> rows = RepeatRows(ids);
  CHECK(rows == std::vector<int32_t>{kNoRepeat, kNoRepeat, 0, kNoRepeat, 1, 2, kNoRepeat});
  std::string wire;
  WriteRepeatMap(rows, &wire);
  CHECK(wire == std::string("\0\0\2\0\3\3\0", 7));
  std::vector<int32_t> back;
  REQUIRE(ReadRepeatMap(wire, ids.size(), &back).ok());
  CHECK(back == rows);
  // Truncated, trailing, forward or self references, overlong varints.
  CHECK(ReadRepeatMap(wire.substr(0, 6), ids.size(), &back).code() == absl::StatusCode::kDataLoss);
  CHECK(ReadRepeatMap(wire + '\0', ids.size(), &back).code() == absl::StatusCode::kDataLoss);
  CHECK(ReadRepeatMap(std::string("\1", 1), 1, &back).code() == absl::StatusCode::kDataLoss);
  CHECK(ReadRepeatMap(std::string("\0\2", 2), 2, &back).code() == absl::StatusCode::kDataLoss);
  CHECK(ReadRepeatMap(std::string("\x80\x80\x80\x80\x80\x01", 6), 1, &back).code() ==
        absl::StatusCode::kDataLoss);
}

TEST_CASE("repeat contexts: same decoded values as order-0 coding, fewer bits, SIMD = portable",
          "[codec][repeat]") {
  const KvCodec codec = GoldenInSampleCodec();
  const GoldenKv& kv = Golden();
  const KvChunkView with_ids = kv.View(TestFingerprint());
  KvChunkView no_ids = with_ids;
  no_ids.token_ids = {};
  REQUIRE(!codec.profile().tables.empty());
  for (const SlotTable& t : codec.profile().tables) CHECK(!t.repeat_freqs.empty());
  for (int level = 0; level < static_cast<int>(codec.profile().levels.size()); ++level) {
    INFO("level " << level);
    EncodeStats st_ids, st_plain;
    const std::string a = *codec.Encode(with_ids, level, {}, &st_ids);
    const std::string b = *codec.Encode(no_ids, level, {}, &st_plain);
    CHECK(st_plain.slots_with_repeat == 0);
    CHECK(st_plain.repeat_bytes == 0);
    CHECK(st_ids.slots_with_repeat > 0);
    CHECK(st_ids.repeat_bytes == kv.tokens);  // 64 tokens, every distance < 128: one byte each
    CHECK(a.size() < b.size());
    auto da = codec.Decode(a);
    auto db = codec.Decode(b);
    REQUIRE(da.ok());
    REQUIRE(db.ok());
    CHECK(da->kv == db->kv);  // same quantized symbols, other tables
    CHECK(da->missing_slots == db->missing_slots);
    // Forced repeat contexts on every slot, and the portable decoder: same values.
    const std::string forced =
        *codec.Encode(with_ids, level, {.tables = TableChoice::kProfileRepeat});
    auto df = codec.Decode(forced);
    REQUIRE(df.ok());
    CHECK(df->kv == db->kv);
    if (RansSimdAvailable()) {
      SetRansSimdEnabled(false);
      auto scalar = codec.Decode(forced);
      SetRansSimdEnabled(true);
      REQUIRE(scalar.ok());
      CHECK(scalar->kv == df->kv);
    }
  }
  // Odd channel counts (narrow column groups) go through the scalar repeat path.
  {
    const KvGeometry g{2, 3, 15};  // C = 45: a full group of 32 and a narrow one of 13
    const uint32_t tokens = 40;
    std::vector<float> data(static_cast<size_t>(g.slots()) * tokens * g.channels());
    uint32_t seed = 1;
    std::vector<int32_t> ids(tokens);
    for (uint32_t t = 0; t < tokens; ++t) ids[t] = static_cast<int32_t>(t % 7);
    for (size_t i = 0; i < data.size(); ++i) {
      seed = seed * 1664525u + 1013904223u;
      const size_t t = (i / g.channels()) % tokens, c = i % g.channels();
      // Rows of the same id are similar: value of (id, channel) + small noise.
      data[i] = static_cast<float>((ids[t] * 37 + c * 11) % 23) / 7.f - 1.5f +
                static_cast<float>(seed >> 24) / 2048.f;
    }
    KvChunkView v;
    v.geometry = g;
    v.token_count = tokens;
    v.fingerprint = TestFingerprint(4);
    v.data = data;
    v.token_ids = ids;
    ProfileBuilder b(v.fingerprint, g, DefaultLevels(g.layers), DefaultLevelIndex());
    REQUIRE(b.AddChunk(v).ok());
    auto c = KvCodec::Create(b.Build());
    REQUIRE(c.ok());
    KvChunkView plain = v;
    plain.token_ids = {};
    const std::string r = *c->Encode(v, 0, {.tables = TableChoice::kProfileRepeat});
    auto dr = c->Decode(r);
    auto dp = c->Decode(*c->Encode(plain, 0, {.tables = TableChoice::kProfile}));
    REQUIRE(dr.ok());
    REQUIRE(dp.ok());
    CHECK(dr->kv == dp->kv);
    if (RansSimdAvailable()) {
      SetRansSimdEnabled(false);
      auto scalar = c->Decode(r);
      SetRansSimdEnabled(true);
      REQUIRE(scalar.ok());
      CHECK(scalar->kv == dr->kv);
    }
  }
}

TEST_CASE("repeat contexts: token id validation and inconsistent chunks rejected",
          "[codec][repeat]") {
  const KvCodec codec = GoldenInSampleCodec();
  const GoldenKv& kv = Golden();
  KvChunkView v = kv.View(TestFingerprint());
  std::vector<int32_t> ids = kv.ids;
  ids.pop_back();
  v.token_ids = ids;
  CHECK(codec.Encode(v, 3).status().code() == absl::StatusCode::kInvalidArgument);
  ids = kv.ids;
  ids[5] = -3;
  v.token_ids = ids;
  CHECK(codec.Encode(v, 3).status().code() == absl::StatusCode::kInvalidArgument);
  v.token_ids = {};
  CHECK(codec.Encode(v, 3, {.tables = TableChoice::kProfileRepeat}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  // A profile without repeat tables cannot be forced into mode 3; auto codes order-0.
  CodecProfile p = codec.profile();
  for (SlotTable& t : p.tables) t.repeat_freqs.clear();
  auto plain = KvCodec::Create(p);
  REQUIRE(plain.ok());
  v.token_ids = kv.ids;
  CHECK(plain->Encode(v, 3, {.tables = TableChoice::kProfileRepeat}).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  EncodeStats st;
  REQUIRE(plain->Encode(v, 3, {}, &st).ok());
  CHECK(st.slots_with_repeat == 0);

  const std::string rep = *codec.Encode(v, 3);
  const std::string order0 = *codec.Encode(v, 3, {.tables = TableChoice::kProfile});
  REQUIRE(codec.Decode(rep).ok());
  // Mode 3 without its map, a map without mode 3, a map pointing forward: DataLoss.
  CHECK(codec.Decode(WithSection(rep, 5, "")).status().code() == absl::StatusCode::kDataLoss);
  std::string map;
  WriteRepeatMap(RepeatRows(kv.ids), &map);
  CHECK(codec.Decode(WithSection(order0, 5, map)).status().code() == absl::StatusCode::kDataLoss);
  std::string forward = map;
  forward[0] = 1;
  CHECK(codec.Decode(WithSection(rep, 5, forward)).status().code() == absl::StatusCode::kDataLoss);
  // A decoder whose profile has no repeat tables (same order-0 tables, other hash) refuses.
  CHECK(plain->Decode(rep).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("profile: repeat tables round trip, other versions rejected", "[profile][repeat]") {
  const KvCodec codec = GoldenInSampleCodec();
  const std::string bytes = SerializeProfile(codec.profile());
  auto back = ParseProfile(bytes);
  REQUIRE(back.ok());
  REQUIRE(back->tables.size() == codec.profile().tables.size());
  for (size_t i = 0; i < back->tables.size(); ++i) {
    CHECK(back->tables[i].repeat_freqs == codec.profile().tables[i].repeat_freqs);
  }
  CHECK(back->TablesHash() == codec.profile().TablesHash());
  CodecProfile q = *back;
  q.tables[0].repeat_freqs[0] += 1;
  q.tables[0].repeat_freqs[1] -= 1;
  CHECK(q.TablesHash() != back->TablesHash());
  // An older (or newer) version: InvalidArgument naming the version, before the checksum.
  for (uint16_t version : {uint16_t{1}, static_cast<uint16_t>(kProfileVersion - 1),
                           static_cast<uint16_t>(kProfileVersion + 1)}) {
    std::string old = bytes;
    old[4] = static_cast<char>(version & 0xff);
    old[5] = static_cast<char>(version >> 8);
    auto r = ParseProfile(old);
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("calibrate") != absl::string_view::npos);
  }
}

}  // namespace
}  // namespace ctx::codec
