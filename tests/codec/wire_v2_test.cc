// Wire format v2 specifics: 8-bit scale side information, the token cap, empty slot masks,
// geometry that contradicts the model's profile, and parallel decode (DecodeChunks).
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "common/codec/baselines.h"
#include "common/codec/codec.h"
#include "common/codec/level_table.h"
#include "common/codec/quantizer.h"
#include "tests/codec/golden_kv.h"

namespace ctx::codec {
namespace {

using testing::Golden;
using testing::GoldenInSampleCodec;
using testing::TestFingerprint;

void PutLe(std::string* s, size_t off, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) (*s)[off + i] = static_cast<char>(v >> (8 * i));
}

// Rewrites the header checksum so that a forged header reaches the checks after it.
std::string Reseal(std::string bytes) {
  const absl::string_view all(bytes);
  PutLe(&bytes, 88, ChunkChecksum(all.substr(0, 88), all.substr(kChunkHeaderSize)), 8);
  return bytes;
}

TEST_CASE("side information stays under 0.1 bit/element at every level", "[codec][v2]") {
  const KvCodec codec = GoldenInSampleCodec();
  const auto view = Golden().View(TestFingerprint());
  for (int level = 0; level < static_cast<int>(codec.profile().levels.size()); ++level) {
    EncodeStats st;
    REQUIRE(codec.Encode(view, level, {}, &st).ok());
    const double side =
        8.0 * (st.total_bytes - st.stream_bytes) / static_cast<double>(view.NumElements());
    UNSCOPED_INFO("level " << level << " side " << side << " bits/el");
    // 64 tokens: 8-bit scales 0.0625 x (slots sent / slots) + headers ~0.02.
    CHECK(side < 0.1);
    CHECK(st.scale_bytes == static_cast<size_t>(view.geometry.slots() - (level >= 3 ? 2 : 0)) *
                                (4 + view.token_count));
  }
}

TEST_CASE("scale grid: codes are monotone and cover the fitted range", "[codec][v2]") {
  std::vector<float> maxes = {0.f, 1e-9f, 0.25f, 3.f, 17.5f, 65504.f};
  const ScaleGrid g = FitScaleGrid(maxes.data(), maxes.size());
  float s[kScaleCodes];
  REQUIRE(g.Expand(s));
  CHECK(ScaleCode(s, 0.f) == 0);
  for (float m : maxes) {
    const uint8_t k = ScaleCode(s, m);
    CHECK(s[k] >= m);
    if (k > 1) CHECK(s[k - 1] < m);
  }
  for (int k = 1; k + 1 < kScaleCodes; ++k) CHECK(s[k + 1] >= s[k]);
  // A lo of 0 or beyond fp16, or a ratio that overflows, is not a grid.
  CHECK_FALSE(ScaleGrid{0, 10}.Expand(s));
  CHECK_FALSE(ScaleGrid{0x7c00, 0}.Expand(s));
  CHECK_FALSE(ScaleGrid{0x7bff, 65535}.Expand(s));
}

TEST_CASE("chunks declaring too many tokens, no slot, or another geometry are rejected",
          "[codec][v2]") {
  const KvCodec codec = GoldenInSampleCodec();
  const auto view = Golden().View(TestFingerprint());
  const std::string bytes = *codec.Encode(view, 2);
  {
    std::string bad = bytes;
    PutLe(&bad, 40, kMaxChunkTokens + 1, 4);
    auto r = codec.Decode(Reseal(bad));
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(ParseChunk(Reseal(bad)).status().code() == absl::StatusCode::kInvalidArgument);
  }
  {
    // No slot present: formerly decoded to zeros of any size.
    std::string bad = bytes;
    PutLe(&bad, 48, 0, 8);
    PutLe(&bad, 56, 0, 8);
    CHECK(codec.Decode(Reseal(bad)).status().code() == absl::StatusCode::kInvalidArgument);
    auto raw = EncodeRawF16(view);
    REQUIRE(raw.ok());
    std::string bad_raw = *raw;
    PutLe(&bad_raw, 48, 0, 8);
    PutLe(&bad_raw, 56, 0, 8);
    CHECK(codec.Decode(Reseal(bad_raw)).status().code() == absl::StatusCode::kInvalidArgument);
  }
  {
    // Same model fingerprint, geometry unlike its profile's: rejected before any allocation,
    // for every kind (here a raw chunk, which names no profile tables).
    std::string bad = *EncodeRawF16(view);
    PutLe(&bad, 14, 4096, 2);  // head_dim
    auto r = codec.Decode(Reseal(bad));
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("profile") != absl::string_view::npos);
  }
  {
    // Encoders refuse chunks above the cap too.
    KvChunkView big = view;
    big.token_count = kMaxChunkTokens + 1;
    CHECK(codec.Encode(big, 0).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("parallel decode is bit-identical to serial decode", "[codec][v2]") {
  const KvCodec codec = GoldenInSampleCodec();
  const auto view = Golden().View(TestFingerprint());
  std::vector<std::string> chunks;
  for (int level = 0; level < static_cast<int>(codec.profile().levels.size()); ++level) {
    chunks.push_back(*codec.Encode(view, level));
  }
  chunks.push_back(*EncodeInt8(view));
  chunks.push_back(*EncodeRawF16(view));
  for (int i = 0; i < 2; ++i) chunks.push_back(chunks[i]);  // the same chunk twice is fine
  std::vector<absl::string_view> in(chunks.begin(), chunks.end());

  std::vector<std::vector<float>> serial;
  for (const std::string& c : chunks) serial.push_back(codec.Decode(c)->kv);

  for (int threads : {1, 2, 4, 0}) {
    auto decoded = codec.DecodeChunks(in, {}, threads);
    REQUIRE(decoded.ok());
    REQUIRE(decoded->size() == chunks.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      REQUIRE((*decoded)[i].kv.size() == serial[i].size());
      CHECK(std::memcmp((*decoded)[i].kv.data(), serial[i].data(),
                        serial[i].size() * sizeof(float)) == 0);
    }
    std::vector<std::vector<float>> bufs;
    for (const auto& s : serial) bufs.emplace_back(s.size(), -1.f);
    std::vector<std::span<float>> outs(bufs.begin(), bufs.end());
    REQUIRE(codec.DecodeChunksInto(in, {}, outs, threads).ok());
    for (size_t i = 0; i < chunks.size(); ++i) CHECK(bufs[i] == serial[i]);
  }
  // One corrupted chunk: its error is reported (per chunk too), the others still decode.
  std::string broken = chunks[1];
  broken[broken.size() / 2] ^= 0x10;
  in[1] = broken;
  std::vector<absl::Status> statuses;
  std::vector<std::vector<float>> bufs;
  for (const auto& s : serial) bufs.emplace_back(s.size());
  std::vector<std::span<float>> outs(bufs.begin(), bufs.end());
  const absl::Status st = codec.DecodeChunksInto(in, {}, outs, 3, &statuses);
  CHECK(st.code() == absl::StatusCode::kDataLoss);
  REQUIRE(statuses.size() == chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) CHECK(statuses[i].ok() == (i != 1));
  CHECK(codec.DecodeChunks(in).status().code() == absl::StatusCode::kDataLoss);
  CHECK_FALSE(codec.DecodeChunksInto(in, {}, std::span<const std::span<float>>(), 2).ok());
}

}  // namespace
}  // namespace ctx::codec
