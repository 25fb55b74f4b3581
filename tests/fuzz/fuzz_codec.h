// Shared by the codec fuzz targets and the seed generator: the geometry and codecs the
// decoder is fuzzed against. A profile with static tables (built from a deterministic
// random chunk) so that chunks referring to profile tables reach the rANS decoder too.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "common/codec/codec.h"
#include "common/codec/level_table.h"

namespace ctx::fuzz {

inline constexpr codec::KvGeometry kGeometry{.layers = 2, .kv_heads = 2, .head_dim = 4};
inline constexpr uint32_t kTokens = 8;

// Deterministic KV-like values: [layers][K|V][T][C], a few channels with outliers.
inline std::vector<float> SampleKv(uint32_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> kv(static_cast<size_t>(kGeometry.slots()) * tokens * kGeometry.channels());
  for (size_t i = 0; i < kv.size(); ++i) kv[i] = n(rng) * ((i % 7 == 0) ? 8.0f : 1.0f);
  return kv;
}

// Token ids with repeats (id t % 11): rows coded with repeat contexts, and a repeat map.
inline std::span<const int32_t> SampleIds(uint32_t tokens) {
  static const std::vector<int32_t> ids = [] {
    std::vector<int32_t> v(65536);
    for (size_t t = 0; t < v.size(); ++t) v[t] = static_cast<int32_t>((t * 7) % 11);
    return v;
  }();
  return std::span<const int32_t>(ids).subspan(0, tokens);
}

inline codec::KvChunkView View(const std::vector<float>& kv, uint32_t tokens) {
  codec::KvChunkView v;
  v.geometry = kGeometry;
  v.token_begin = 0;
  v.token_count = tokens;
  v.fingerprint.fill(0x5a);
  v.data = kv;
  v.token_ids = SampleIds(tokens);
  return v;
}

// A codec whose profile carries static tables for every level (built once).
inline const codec::KvCodec& ProfileCodec() {
  static const codec::KvCodec* codec = [] {
    codec::ModelFingerprint fp;
    fp.fill(0x5a);
    codec::ProfileBuilder builder(fp, kGeometry, codec::DefaultLevels(kGeometry.layers));
    const std::vector<float> kv = SampleKv(64, 1);
    if (!builder.AddChunk(View(kv, 64)).ok()) __builtin_trap();
    auto c = codec::KvCodec::Create(builder.Build());
    if (!c.ok()) __builtin_trap();
    return new codec::KvCodec(std::move(*c));
  }();
  return *codec;
}

}  // namespace ctx::fuzz
