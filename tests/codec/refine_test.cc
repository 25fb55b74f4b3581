// Wire format v3: refinement bits (quantizer.h, docs/kv-wire-format.md §4 and §7). A slot with
// r refinement bits codes the same rANS symbols as without, plus r raw bits per element that
// pick one of 2^r sub-bins: 2^r times finer error bound for exactly r bits/element more.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "common/codec/codec.h"
#include "common/codec/level_table.h"
#include "common/codec/quantizer.h"
#include "tests/codec/golden_kv.h"

namespace ctx::codec {
namespace {

using testing::Golden;
using testing::GoldenInSampleCodec;
using testing::GoldenKv;
using testing::TestFingerprint;

LevelSpec Uniform(int layers, int bins, int refine) {
  LevelSpec l;  // (no name: GCC 12 warns -Wrestrict on a short literal assigned here)
  l.key_bins.assign(layers, static_cast<uint16_t>(bins));
  l.value_bins.assign(layers, static_cast<uint16_t>(bins));
  l.key_refine.assign(layers, static_cast<uint8_t>(refine));
  l.value_refine.assign(layers, static_cast<uint8_t>(refine));
  return l;
}

// Max over elements of |x - x̂| - s / (2^(r+1) MAX) (s: the row's 8-bit grid scale, recomputed
// from the input; <= 0 means every element is within the refined bound), and the relative L2.
void RefinedErrors(const KvChunkView& in, const std::vector<float>& out, const LevelSpec& spec,
                   double* worst_excess, double* rel_l2) {
  const int c = in.geometry.channels();
  double num = 0, den = 0;
  *worst_excess = -1;
  for (int slot = 0; slot < in.geometry.slots(); ++slot) {
    const int bins = spec.Bins(slot);
    if (bins == 0) continue;
    std::vector<float> row_max(in.token_count);
    for (uint32_t t = 0; t < in.token_count; ++t) {
      REQUIRE(RowMaxAbs(in.data.data() + (slot * in.token_count + t) * c, c, &row_max[t]).ok());
    }
    float scale[kScaleCodes];
    REQUIRE(FitScaleGrid(row_max.data(), row_max.size()).Expand(scale));
    for (uint32_t t = 0; t < in.token_count; ++t) {
      const size_t off = (static_cast<size_t>(slot) * in.token_count + t) * c;
      const double s = scale[ScaleCode(scale, row_max[t])];
      const double bound = s / (2.0 * MaxQ(bins) * (1 << spec.Refine(slot)));
      for (int i = 0; i < c; ++i) {
        const double e = std::fabs(in.data[off + i] - out[off + i]);
        // Slack: float rounding of x*MAX/s + MAX (<= 2^-23 s) and of x̂ (<= 2^-24 s).
        *worst_excess = std::max(*worst_excess, e - bound - s * 0x1p-20);
        num += e * e;
        den += static_cast<double>(in.data[off + i]) * in.data[off + i];
      }
    }
  }
  *rel_l2 = std::sqrt(num / den);
}

std::string Reforge(const std::string& chunk, std::string payload) {
  auto parsed = ParseChunk(chunk);
  REQUIRE(parsed.ok());
  std::string out;
  WriteChunk(parsed->header, payload, &out);
  return out;
}

TEST_CASE("refinement bits: same symbols, 2^r finer bound, exactly r bits/element more",
          "[codec][refine]") {
  const GoldenKv& kv = Golden();
  const KvGeometry& g = kv.geometry;
  auto codec = KvCodec::CreateDefault(TestFingerprint(), g);
  REQUIRE(codec.ok());
  const KvChunkView view = kv.View(TestFingerprint());
  for (int bins : {128, 32, 6}) {
    EncodeStats s0;
    const std::string base = *codec->EncodeWithBins(view, Uniform(g.layers, bins, 0), {}, &s0);
    CHECK(s0.refine_bytes == 0);
    double prev_rel = 1e9;
    for (int r = 0; r <= kMaxRefineBits; ++r) {
      INFO("bins " << bins << " r " << r);
      const LevelSpec spec = Uniform(g.layers, bins, r);
      EncodeStats st;
      auto bytes = codec->EncodeWithBins(view, spec, {}, &st);
      REQUIRE(bytes.ok());
      // The rANS part is today's, bit for bit; the refinement adds exactly r bits per element.
      CHECK(st.stream_bytes == s0.stream_bytes);
      CHECK(st.table_bytes == s0.table_bytes);
      CHECK(st.scale_bytes == s0.scale_bytes);
      CHECK(st.refine_bytes == static_cast<size_t>(g.slots()) * RefineBytes(64 * 128, r));
      CHECK(bytes->size() == base.size() + st.refine_bytes);
      auto d = codec->Decode(*bytes);
      REQUIRE(d.ok());
      double excess, rel;
      RefinedErrors(view, d->kv, spec, &excess, &rel);
      CHECK(excess <= 0);
      // Each refinement bit halves the error (roughly: the scale grid is shared).
      if (r > 0) CHECK(rel < 0.65 * prev_rel);
      prev_rel = rel;
      CHECK(*codec->EncodeWithBins(view, spec) == *bytes);  // deterministic
    }
  }
}

TEST_CASE("refinement bits: mixed per slot, odd widths with padding, every corruption rejected",
          "[codec][refine]") {
  const KvGeometry g{3, 1, 6};  // C = 6: rows do not start on a byte of the refinement bits
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.f, 1.5f);
  const uint32_t tokens = 7;  // 42 values per slot: r=1,3,5,7 leave padding bits
  std::vector<float> data(static_cast<size_t>(g.slots()) * tokens * g.channels());
  for (float& v : data) v = n(rng);
  KvChunkView view{g, 0, tokens, TestFingerprint(4), data, {}};
  auto codec = KvCodec::CreateDefault(view.fingerprint, g);
  REQUIRE(codec.ok());
  auto spec = ParseLevelBins("mix", "0 16+3 128+8|20+1 8 64+5", g.layers);
  REQUIRE(spec.ok());
  CHECK(spec->Refine(2) == 3);
  CHECK(spec->Refine(1) == 1);
  CHECK(spec->Refine(3) == 0);
  CHECK(spec->Refine(4) == 8);
  EncodeStats st;
  const std::string bytes = *codec->EncodeWithBins(view, *spec, {}, &st);
  CHECK(st.refine_bytes ==
        RefineBytes(42, 1) + RefineBytes(42, 3) + RefineBytes(42, 8) + RefineBytes(42, 5));
  auto d = codec->Decode(bytes);
  REQUIRE(d.ok());
  double excess, rel;
  RefinedErrors(view, d->kv, *spec, &excess, &rel);
  CHECK(excess <= 0);

  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    REQUIRE(codec->Decode(absl::string_view(bytes).substr(0, cut)).status().code() ==
            absl::StatusCode::kDataLoss);
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
    REQUIRE_FALSE(codec->Decode(bad).ok());
  }

  // Behind a valid checksum: padding bits, refine fields, section lengths.
  auto parsed = ParseChunk(bytes);
  REQUIRE(parsed.ok());
  const std::string payload(parsed->payload);
  auto sections = ReadSections(payload, 6);
  REQUIRE(sections.ok());
  const size_t dir = (*sections)[0].data() - payload.data();
  const size_t refine = (*sections)[4].data() - payload.data();
  REQUIRE((*sections)[4].size() == st.refine_bytes);
  {
    // Slot 1 (V0, r = 1): 42 bits, the last byte's top 6 bits are padding.
    std::string p = payload;
    p[refine + RefineBytes(42, 1) - 1] |= static_cast<char>(0x80);
    CHECK(codec->Decode(Reforge(bytes, p)).status().code() == absl::StatusCode::kDataLoss);
  }
  for (uint8_t r : {uint8_t{9}, uint8_t{255}, uint8_t{0}, uint8_t{2}}) {
    // Slot directory entry 0 is slot 1 (V0): u8 bins/2, u8 mode, u8 refine.
    std::string p = payload;
    p[dir + 2] = static_cast<char>(r);
    CHECK(codec->Decode(Reforge(bytes, p)).status().code() == absl::StatusCode::kDataLoss);
  }
  {
    // One trailing byte in the refinement section (moved from the stream's end: same size).
    std::string p = payload;
    // Section directory: u32 count, then (offset, length) pairs; grow section 4 by one byte
    // and shrink section 3 by one byte, keeping the payload size.
    auto put32 = [&p](size_t at, uint32_t v) {
      for (int k = 0; k < 4; ++k) p[at + k] = static_cast<char>(v >> (8 * k));
    };
    const uint32_t len3 = static_cast<uint32_t>((*sections)[3].size());
    put32(4 + 8 * 3 + 4, len3 - 1);
    put32(4 + 8 * 4, static_cast<uint32_t>(refine - 1));
    put32(4 + 8 * 4 + 4, static_cast<uint32_t>(st.refine_bytes + 1));
    CHECK(codec->Decode(Reforge(bytes, p)).status().code() == absl::StatusCode::kDataLoss);
  }
  // The slot directory read back as a level spec (what kvcache compares with its profile).
  auto coded = RansChunkLevelSpec(*parsed);
  REQUIRE(coded.ok());
  for (int slot = 0; slot < g.slots(); ++slot) {
    CHECK(coded->Bins(slot) == spec->Bins(slot));
    CHECK(coded->Refine(slot) == spec->Refine(slot));
  }
  {
    std::string p = payload;
    p[dir + 2] = 9;
    const std::string forged_bytes = Reforge(bytes, p);
    auto forged = ParseChunk(forged_bytes);
    REQUIRE(forged.ok());
    CHECK(RansChunkLevelSpec(*forged).status().code() == absl::StatusCode::kDataLoss);
  }
  // Levels with refinement bits where no slot is sent, or beyond 8 bits, are refused.
  LevelSpec bad = *spec;
  bad.key_refine[1] = 9;
  CHECK(codec->EncodeWithBins(view, bad).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(ParseLevelBins("x", "4 4|4", g.layers).ok());
  CHECK_FALSE(ParseLevelBins("x", "4 4 4+|4 4 4", g.layers).ok());
  CHECK_FALSE(ParseLevelBins("x", "4 4 4", g.layers).ok());
}

TEST_CASE("profile v2 stores refinement bits, invalid ones are rejected", "[profile][refine]") {
  const GoldenKv& kv = Golden();
  std::vector<LevelSpec> levels = DefaultLevels(kv.geometry.layers);
  auto l0 =
      ParseLevelBins("NL128+3", "128+3 128+3 128+3 128+3 128+3 128+3|128 128 128 128 128 128+2",
                     kv.geometry.layers);
  REQUIRE(l0.ok());
  levels[0] = *l0;
  ProfileBuilder b(TestFingerprint(), kv.geometry, levels, 3);
  REQUIRE(b.AddChunk(kv.View(TestFingerprint())).ok());
  CodecProfile p = b.Build();
  // Estimated size counts the raw bits: 3 bits on 6 K slots and 2 on one V slot of 12.
  auto spec128 = ParseLevelBins("n", "128 128 128 128 128 128|128 128 128 128 128 128", 6);
  {
    ProfileBuilder b128(TestFingerprint(), kv.geometry, {*spec128}, 0);
    REQUIRE(b128.AddChunk(kv.View(TestFingerprint())).ok());
    CHECK(p.levels[0].bits_per_element ==
          Approx(b128.Build().levels[0].bits_per_element + (6 * 3 + 2) / 12.0));
  }
  const std::string bytes = SerializeProfile(p);
  auto back = ParseProfile(bytes);
  REQUIRE(back.ok());
  CHECK(back->levels[0].key_refine == std::vector<uint8_t>(6, 3));
  CHECK(back->levels[0].Refine(11) == 2);
  CHECK(back->levels[1].Refine(0) == 0);
  CHECK(SerializeProfile(*back) == bytes);
  auto codec = KvCodec::Create(*back);
  REQUIRE(codec.ok());
  auto enc = codec->Encode(kv.View(TestFingerprint()), 0);
  REQUIRE(enc.ok());
  auto d = codec->Decode(*enc);
  REQUIRE(d.ok());
  double excess, rel;
  RefinedErrors(kv.View(TestFingerprint()), d->kv, back->levels[0], &excess, &rel);
  CHECK(excess <= 0);

  CodecProfile bad = p;
  bad.levels[0].key_refine[0] = 9;
  CHECK(ValidateProfile(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = p;
  bad.levels[3].key_refine.assign(6, 0);
  bad.levels[3].key_refine[0] = 1;  // layer 0 is not sent at OC-r0
  CHECK(ValidateProfile(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = p;
  bad.levels[0].value_refine.resize(5);
  CHECK(ValidateProfile(bad).code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ctx::codec
