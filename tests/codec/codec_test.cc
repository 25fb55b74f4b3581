#include "common/codec/codec.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <random>
#include <thread>

#include "common/codec/baselines.h"
#include "common/codec/level_table.h"
#include "common/codec/quantizer.h"
#include "common/tensor/dtype.h"
#include "tests/codec/golden_kv.h"

namespace ctx::codec {
namespace {

using testing::Golden;
using testing::GoldenInSampleCodec;
using testing::GoldenKv;
using testing::TestFingerprint;

DecodeOptions ExpectModel(const ModelFingerprint& fp) {
  DecodeOptions o;
  o.expected_fingerprint = fp;
  return o;
}

DecodeOptions ExpectGeometry(const KvGeometry& g) {
  DecodeOptions o;
  o.expected_geometry = g;
  return o;
}

// The first `tokens` tokens of the golden KV as their own chunk.
GoldenKv Prefix(uint32_t tokens) {
  const auto& kv = Golden();
  GoldenKv out;
  out.geometry = kv.geometry;
  out.tokens = tokens;
  const size_t c = kv.geometry.channels();
  for (int slot = 0; slot < kv.geometry.slots(); ++slot) {
    const float* src = kv.data.data() + slot * kv.tokens * c;
    out.data.insert(out.data.end(), src, src + tokens * c);
  }
  out.ids.assign(kv.ids.begin(), kv.ids.begin() + tokens);
  return out;
}

// Relative L2 error over the slots the chunk carries, and the max violation of the
// per-element quantizer bound |x - x̂| <= s / (2 MAX) (<= 0 means within bound), where s is the
// row's stored scale: its slot's 8-bit log-grid scale (quantizer.h), recomputed here from the
// input. Also checks that stored scales exceed max|x| by at most the grid ratio r.
void Errors(const KvChunkView& in, const DecodedChunk& d, const LevelSpec& spec, double* rel_l2,
            double* worst_excess, double* worst_scale_ratio = nullptr, bool fp16_scales = false) {
  const int c = in.geometry.channels();
  double num = 0, den = 0, worst_ratio = 1;
  *worst_excess = -1;
  for (int slot = 0; slot < in.geometry.slots(); ++slot) {
    const int bins = spec.Bins(slot);
    if (bins == 0) continue;
    std::vector<float> row_max(in.token_count);
    for (uint32_t t = 0; t < in.token_count; ++t) {
      const size_t off = (static_cast<size_t>(slot) * in.token_count + t) * c;
      REQUIRE(RowMaxAbs(in.data.data() + off, c, &row_max[t]).ok());
    }
    const ScaleGrid grid = FitScaleGrid(row_max.data(), row_max.size());
    float scale[kScaleCodes];
    REQUIRE(grid.Expand(scale));
    for (uint32_t t = 0; t < in.token_count; ++t) {
      const size_t off = (static_cast<size_t>(slot) * in.token_count + t) * c;
      float s = scale[ScaleCode(scale, row_max[t])];
      if (fp16_scales) {  // the int8 baseline: smallest fp16 >= max|x|
        uint16_t h;
        REQUIRE(RowScale(in.data.data() + off, c, &h).ok());
        s = tensor::HalfToFloat(h);
      }
      REQUIRE(s >= row_max[t]);
      if (!fp16_scales && row_max[t] > 0 && s > tensor::HalfToFloat(grid.lo_f16)) {
        REQUIRE(s <= row_max[t] * grid.ratio() * (1 + 1e-6));
        worst_ratio = std::max(worst_ratio, static_cast<double>(s) / row_max[t]);
      }
      const double bound = s / (2.0 * MaxQ(bins) * (1 << spec.Refine(slot)));
      for (int i = 0; i < c; ++i) {
        const double e = std::fabs(in.data[off + i] - d.kv[off + i]);
        // Slack: float rounding of x*MAX/s + MAX and of x̂ (each <= 2^-23 s).
        *worst_excess = std::max(*worst_excess, e - bound * (1 + 1e-5) - s * 0x1p-20);
        num += e * e;
        den += static_cast<double>(in.data[off + i]) * in.data[off + i];
      }
    }
  }
  *rel_l2 = std::sqrt(num / den);
  if (worst_scale_ratio) *worst_scale_ratio = worst_ratio;
}

TEST_CASE("round trip at every level on golden KV, within the quantizer bound", "[codec]") {
  const auto& kv = Golden();
  const KvCodec codec = GoldenInSampleCodec();
  const auto view = kv.View(TestFingerprint());
  auto int8 = EncodeInt8(view);
  REQUIRE(int8.ok());
  double prev_err = 0;
  size_t prev_size = SIZE_MAX;
  for (int level = 0; level < static_cast<int>(codec.profile().levels.size()); ++level) {
    const LevelSpec& spec = codec.profile().levels[level];
    EncodeStats stats;
    auto bytes = codec.Encode(view, level, {}, &stats);
    REQUIRE(bytes.ok());
    CHECK(stats.total_bytes == bytes->size());
    auto d = codec.Decode(*bytes, ExpectModel(TestFingerprint()));
    REQUIRE(d.ok());
    CHECK(d->header.level == level);
    CHECK(d->header.kind == EncodingKind::kRans);
    CHECK(d->header.token_count == kv.tokens);
    double rel, excess, scale_ratio;
    Errors(view, *d, spec, &rel, &excess, &scale_ratio);
    CHECK(excess <= 0);
    // 8-bit scales: on real KV the grid is fine (stored scale within 4 % of max|x|).
    CHECK(scale_ratio < 1.04);
    // Slots not sent are reported and zero.
    for (int slot : d->missing_slots) CHECK(spec.Bins(slot) == 0);
    for (int slot = 0; slot < kv.geometry.slots(); ++slot) {
      if (spec.Bins(slot) == 0) {
        CHECK(std::find(d->missing_slots.begin(), d->missing_slots.end(), slot) !=
              d->missing_slots.end());
        CHECK(d->kv[slot * kv.tokens * kv.geometry.channels()] == 0.f);
      }
    }
    const double bits = 8.0 * bytes->size() / view.NumElements();
    UNSCOPED_INFO("level " << spec.name << ": rel L2 " << rel << ", " << bits << " bits/element");
    // Smaller levels: larger error and fewer bytes (golden chunk: 64 tokens, in-sample tables).
    CHECK(rel >= prev_err);
    CHECK(bytes->size() < prev_size);
    prev_err = rel;
    prev_size = bytes->size();
    // Middle levels beat the 8-bit baseline by a wide margin.
    if (level >= 1) CHECK(bytes->size() * 2 < int8->size());
    // Deterministic.
    CHECK(*codec.Encode(view, level) == *bytes);
  }
  CHECK(prev_err < 0.6);
}

TEST_CASE("chunk tables and profile tables decode to the same values", "[codec]") {
  const auto& kv = Golden();
  const KvCodec codec = GoldenInSampleCodec();
  auto no_profile = KvCodec::CreateDefault(TestFingerprint(), kv.geometry);
  REQUIRE(no_profile.ok());
  const auto view = kv.View(TestFingerprint());
  std::vector<float> reference;
  for (TableChoice choice : {TableChoice::kProfile, TableChoice::kChunkPerChannel,
                             TableChoice::kChunkShared, TableChoice::kAuto}) {
    EncodeStats stats;
    auto bytes = codec.Encode(view, 2, {.tables = choice}, &stats);
    REQUIRE(bytes.ok());
    auto d = codec.Decode(*bytes);
    REQUIRE(d.ok());
    if (reference.empty()) reference = d->kv;
    CHECK(d->kv == reference);
    if (choice == TableChoice::kProfile) {
      CHECK(stats.table_bytes == 0);
      CHECK(d->header.profile_hash == codec.profile().TablesHash());
      // A decoder without the profile refuses, naming the reason.
      auto other = no_profile->Decode(*bytes);
      CHECK(other.status().code() == absl::StatusCode::kFailedPrecondition);
    } else if (choice != TableChoice::kAuto) {
      CHECK(stats.table_bytes > 0);
      CHECK(d->header.profile_hash == 0);
      // Self-contained: decodes without the profile.
      auto other = no_profile->Decode(*bytes);
      REQUIRE(other.ok());
      CHECK(other->kv == reference);
    }
  }
  // Without a profile the encoder falls back to chunk tables by itself.
  auto bytes = no_profile->Encode(view, 2);
  REQUIRE(bytes.ok());
  auto d = no_profile->Decode(*bytes);
  REQUIRE(d.ok());
  CHECK(d->kv == reference);
}

TEST_CASE("raw fp16 baseline is exact to fp16 and int8 baseline within its bound", "[codec]") {
  const auto& kv = Golden();
  auto codec = KvCodec::CreateDefault(TestFingerprint(), kv.geometry);
  REQUIRE(codec.ok());
  const auto view = kv.View(TestFingerprint());
  auto raw = EncodeRawF16(view);
  REQUIRE(raw.ok());
  auto d = codec->Decode(*raw);
  REQUIRE(d.ok());
  CHECK(d->header.kind == EncodingKind::kRawF16);
  for (size_t i = 0; i < view.data.size(); ++i) {
    REQUIRE(d->kv[i] == tensor::HalfToFloat(tensor::FloatToHalf(view.data[i])));
  }
  CHECK(raw->size() > view.NumElements() * 2);
  CHECK(raw->size() < view.NumElements() * 2 + 256);

  auto int8 = EncodeInt8(view);
  REQUIRE(int8.ok());
  auto q = codec->Decode(*int8);
  REQUIRE(q.ok());
  CHECK(q->header.kind == EncodingKind::kInt8);
  LevelSpec all256;
  all256.key_bins.assign(kv.geometry.layers, 256);
  all256.value_bins.assign(kv.geometry.layers, 256);
  double rel, excess;
  Errors(view, *q, all256, &rel, &excess, nullptr, /*fp16_scales=*/true);
  CHECK(excess <= 0);
  CHECK(rel < 0.02);
  // 8 bits + a 16-bit scale per C = 128 values.
  const double bits = 8.0 * int8->size() / view.NumElements();
  CHECK(bits > 8.125);
  CHECK(bits < 8.2);
}

TEST_CASE("decoder rejects every truncation and every single-byte flip", "[codec]") {
  const KvCodec codec = GoldenInSampleCodec();
  const GoldenKv small = Prefix(6);
  const auto view = small.View(TestFingerprint());
  // Tokens 6..11 repeat ids 13 (rows 6, 7) and 8119 (rows 8, 10): repeat contexts + map.
  const GoldenKv repeats = Prefix(12);
  std::vector<std::string> chunks;
  {
    EncodeStats st;
    chunks.push_back(*codec.Encode(repeats.View(TestFingerprint()), 3,
                                   {.tables = TableChoice::kProfileRepeat}, &st));
    REQUIRE(st.slots_with_repeat > 0);
    REQUIRE(st.repeat_bytes == 12);
  }
  chunks.push_back(*codec.Encode(view, 2));
  chunks.push_back(*codec.Encode(view, 4, {.tables = TableChoice::kChunkPerChannel}));
  chunks.push_back(*codec.Encode(view, 3, {.tables = TableChoice::kChunkShared}));
  chunks.push_back(*EncodeInt8(view));
  chunks.push_back(*EncodeRawF16(view));
  // Refinement bits (wire v3) on some slots.
  chunks.push_back(*codec.EncodeWithBins(
      view, *ParseLevelBins("r", "128+3 128+3 32 32+1 6 6|128+8 12 12 12+2 8 8", 6)));
  for (const std::string& bytes : chunks) {
    REQUIRE(codec.Decode(bytes).ok());
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      auto r = codec.Decode(absl::string_view(bytes).substr(0, cut));
      REQUIRE_FALSE(r.ok());
      REQUIRE(r.status().code() == absl::StatusCode::kDataLoss);
    }
    std::string extended = bytes + "x";
    CHECK(codec.Decode(extended).status().code() == absl::StatusCode::kDataLoss);
    for (size_t i = 0; i < bytes.size(); ++i) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
      REQUIRE_FALSE(codec.Decode(bad).ok());
    }
  }
}

TEST_CASE("decoder survives payload corruption behind a valid checksum", "[codec]") {
  // An adversary can recompute the checksum: the payload parser must still never misbehave.
  const KvCodec codec = GoldenInSampleCodec();
  const GoldenKv small = Prefix(12);
  const auto view = small.View(TestFingerprint());
  std::mt19937 rng(11);
  int rejected = 0, total = 0;
  for (TableChoice choice :
       {TableChoice::kProfile, TableChoice::kChunkPerChannel, TableChoice::kProfileRepeat}) {
    const std::string bytes = *codec.Encode(view, 1, {.tables = choice});
    auto parsed = ParseChunk(bytes);
    REQUIRE(parsed.ok());
    for (int trial = 0; trial < 600; ++trial) {
      std::string payload(parsed->payload);
      const int flips = 1 + trial % 3;
      for (int f = 0; f < flips; ++f)
        payload[rng() % payload.size()] ^= static_cast<char>(1 + rng() % 255);
      std::string forged;
      WriteChunk(parsed->header, payload, &forged);
      auto d = codec.Decode(forged);
      ++total;
      if (!d.ok()) ++rejected;
    }
  }
  // Scales are not redundant, so a few forged scale bytes decode "fine"; streams are checked.
  CHECK(rejected > total / 2);
}

TEST_CASE("decoder rejects wrong magic, version, fingerprint and geometry", "[codec]") {
  const auto& kv = Golden();
  const KvCodec codec = GoldenInSampleCodec();
  const std::string bytes = *codec.Encode(Prefix(4).View(TestFingerprint()), 2);
  {
    std::string bad = bytes;
    bad[0] = 'X';
    CHECK(codec.Decode(bad).status().code() == absl::StatusCode::kDataLoss);
  }
  {
    // Older and newer versions with a recomputed checksum: well-formed chunks this build cannot
    // read.
    for (int version : {1, kChunkVersion - 1, kChunkVersion + 1}) {
      std::string bad = bytes;
      bad[4] = static_cast<char>(version);
      auto parsed = ParseChunk(bytes);
      std::string forged = bad.substr(0, 88);
      const uint64_t sum = ChunkChecksum(forged, parsed->payload);
      for (int i = 0; i < 8; ++i) forged.push_back(static_cast<char>(sum >> (8 * i)));
      forged.append(parsed->payload.data(), parsed->payload.size());
      auto r = codec.Decode(forged);
      CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
      CHECK(r.status().message().find("version") != absl::string_view::npos);
    }
  }
  {
    auto r = codec.Decode(bytes, ExpectModel(TestFingerprint(99)));
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(codec.Decode(bytes, ExpectModel(TestFingerprint())).ok());
  }
  {
    KvGeometry g = kv.geometry;
    g.layers += 1;
    CHECK(codec.Decode(bytes, ExpectGeometry(g)).status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
  {
    // Encoding a chunk from another model is refused.
    CHECK_FALSE(codec.Encode(Prefix(4).View(TestFingerprint(3)), 2).ok());
    CHECK_FALSE(codec.Encode(Prefix(4).View(TestFingerprint()), 17).ok());
  }
  {
    // DecodeInto checks the buffer size.
    std::vector<float> small(10);
    CHECK_FALSE(codec.DecodeInto(bytes, {}, small).ok());
  }
}

TEST_CASE("header carries token range, level, masks and dtype", "[codec]") {
  const KvCodec codec = GoldenInSampleCodec();
  GoldenKv p = Prefix(3);
  KvChunkView v = p.View(TestFingerprint());
  v.token_begin = 4096;
  const std::string bytes = *codec.Encode(v, 3, {.dtype = KvDType::kBF16});
  auto parsed = ParseChunk(bytes);
  REQUIRE(parsed.ok());
  CHECK(parsed->header.token_begin == 4096);
  CHECK(parsed->header.token_count == 3);
  CHECK(parsed->header.level == 3);
  CHECK(parsed->header.dtype == KvDType::kBF16);
  CHECK(parsed->header.key_mask == (AllLayersMask(6) & ~uint64_t{1}));
  CHECK(parsed->header.value_mask == (AllLayersMask(6) & ~uint64_t{1}));
}

}  // namespace
}  // namespace ctx::codec

namespace ctx::codec {
namespace {

TEST_CASE("odd geometry (C not a multiple of 4) and ad-hoc bins round-trip", "[codec]") {
  const KvGeometry g{3, 1, 6};  // C = 6: one full 4-channel group + a 2-channel group
  std::mt19937 rng(21);
  std::normal_distribution<float> n(0.f, 2.f);
  const uint32_t tokens = 37;
  std::vector<float> data(static_cast<size_t>(g.slots()) * tokens * g.channels());
  for (float& v : data) v = n(rng);
  KvChunkView view;
  view.geometry = g;
  view.token_count = tokens;
  view.token_begin = 100;
  view.fingerprint = TestFingerprint(4);
  view.data = data;
  ProfileBuilder b(view.fingerprint, g, DefaultLevels(g.layers), 0);
  REQUIRE(b.AddChunk(view).ok());
  auto codec = KvCodec::Create(b.Build());
  REQUIRE(codec.ok());
  // Bins the profile has no table for: the encoder must fall back to chunk tables.
  LevelSpec spec;
  spec.key_bins = {0, 10, 64};
  spec.value_bins = {20, 0, 256};
  EncodeStats stats;
  auto bytes = codec->EncodeWithBins(view, spec, {}, &stats);
  REQUIRE(bytes.ok());
  CHECK(stats.slots_with_chunk_tables == 4);
  auto d = codec->Decode(*bytes);
  REQUIRE(d.ok());
  CHECK(d->header.level == kNoLevel);
  CHECK(d->missing_slots == std::vector<int>{0, 3});
  double rel, excess;
  Errors(view, *d, spec, &rel, &excess);
  CHECK(excess <= 0);
  // Every level too, with profile tables forced.
  for (int level = 0; level < static_cast<int>(codec->profile().levels.size()); ++level) {
    EncodeOptions o;
    o.tables = TableChoice::kProfile;
    auto lb = codec->Encode(view, level, o);
    REQUIRE(lb.ok());
    auto ld = codec->Decode(*lb);
    REQUIRE(ld.ok());
    Errors(view, *ld, codec->profile().levels[level], &rel, &excess);
    CHECK(excess <= 0);
  }
  // Forcing profile tables for bins the profile lacks is an error, not a crash.
  EncodeOptions force;
  force.tables = TableChoice::kProfile;
  CHECK(codec->EncodeWithBins(view, spec, force).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  // Invalid bins are rejected.
  spec.key_bins[1] = 7;
  CHECK_FALSE(codec->EncodeWithBins(view, spec).ok());
}

TEST_CASE("encoder rejects NaN and wrong-sized input", "[codec]") {
  const KvCodec codec = GoldenInSampleCodec();
  GoldenKv p = Prefix(2);
  p.data[5] = NAN;
  CHECK(codec.Encode(p.View(TestFingerprint()), 2).status().code() ==
        absl::StatusCode::kInvalidArgument);
  GoldenKv q = Prefix(2);
  KvChunkView v = q.View(TestFingerprint());
  v.data = v.data.subspan(1);
  CHECK_FALSE(codec.Encode(v, 2).ok());
  CHECK_FALSE(EncodeInt8(v).ok());
  CHECK_FALSE(EncodeRawF16(v).ok());
}

}  // namespace
}  // namespace ctx::codec

namespace ctx::codec {
namespace {

TEST_CASE("profile's estimated bits/element match the encoded size", "[codec]") {
  const auto& kv = Golden();
  const KvCodec codec = GoldenInSampleCodec();
  // The estimate counts each slot with repeat contexts where they code smaller, as the encoder
  // chooses (the profile's tables, one chunk: the same choice).
  for (int level = 0; level < static_cast<int>(codec.profile().levels.size()); ++level) {
    const std::string bytes = *codec.Encode(kv.View(TestFingerprint()), level);
    const double actual = 8.0 * bytes.size() / (kv.data.size());
    const double estimate = codec.profile().levels[level].bits_per_element;
    // Estimate = entropy under the tables + scales; actual adds rANS flush and the header.
    CHECK(actual > estimate);
    CHECK(actual < estimate * 1.02 + 0.02);
  }
}

TEST_CASE("one codec encodes and decodes concurrently from several threads", "[codec]") {
  const KvCodec codec = GoldenInSampleCodec();
  const auto view = Golden().View(TestFingerprint());
  std::vector<std::string> expected;
  for (int level = 0; level < 4; ++level) expected.push_back(*codec.Encode(view, level));
  std::vector<int> ok(4, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int rep = 0; rep < 3; ++rep) {
        auto bytes = codec.Encode(view, i);
        auto d = codec.Decode(*bytes);
        ok[i] += bytes.ok() && *bytes == expected[i] && d.ok();
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == std::vector<int>{3, 3, 3, 3});
}

}  // namespace
}  // namespace ctx::codec

namespace ctx::codec {
namespace {

// The shipped profile's levels mix profile tables with tables carried in the chunk (level 0
// ships none of its 128-bin tables): every level must round-trip real KV within its bound.
TEST_CASE("shipped profile: every level round-trips golden KV within the quantizer bound",
          "[codec]") {
  std::ifstream in(std::string(CTX_SOURCE_DIR) + "/models/tiny-llama/kvcodec.profile",
                   std::ios::binary);
  REQUIRE(in.good());
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto profile = ParseProfile(bytes);
  REQUIRE(profile.ok());
  const ModelFingerprint fp = profile->fingerprint;
  auto codec = KvCodec::Create(*std::move(profile));
  REQUIRE(codec.ok());
  for (uint32_t tokens : {64u, 40u, 7u}) {
    const GoldenKv kv = Prefix(tokens);
    const auto view = kv.View(fp);
    for (int level = 0; level < static_cast<int>(codec->profile().levels.size()); ++level) {
      const LevelSpec& spec = codec->profile().levels[level];
      auto enc = codec->Encode(view, level);
      REQUIRE(enc.ok());
      auto d = codec->Decode(*enc, ExpectModel(fp));
      REQUIRE(d.ok());
      double rel, excess, scale_ratio;
      Errors(view, *d, spec, &rel, &excess, &scale_ratio);
      INFO("tokens " << tokens << " level " << spec.name << ": rel L2 " << rel);
      CHECK(excess <= 0);
      CHECK(rel < 0.6);
    }
  }
}

}  // namespace
}  // namespace ctx::codec
