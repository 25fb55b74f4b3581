// Test helper: the golden tiny-llama KV (models/golden/tiny-llama.safetensors) in codec layout.
#pragma once

#include <cstdint>
#include <vector>

#include "common/codec/codec.h"
#include "common/codec/kv_chunk.h"

namespace ctx::codec::testing {

struct GoldenKv {
  KvGeometry geometry;
  uint32_t tokens = 0;
  std::vector<float> data;   // [layer][K|V][token][C]
  std::vector<int32_t> ids;  // the prompt's token ids [T] (input_ids)
  KvChunkView View(const ModelFingerprint& fp) const {
    KvChunkView v;
    v.geometry = geometry;
    v.token_count = tokens;
    v.fingerprint = fp;
    v.data = data;
    v.token_ids = ids;
    return v;
  }
};

// Loads past_key_values.{l}.key/value [1, H, T, D] and transposes them to [T][H*D].
GoldenKv LoadGoldenKv();
// LoadGoldenKv(), once per test process.
const GoldenKv& Golden();

inline ModelFingerprint TestFingerprint(uint8_t seed = 7) {
  ModelFingerprint fp;
  for (int i = 0; i < 16; ++i) fp[i] = static_cast<uint8_t>(seed * 31 + i);
  return fp;
}

// A codec over DefaultLevels whose static tables are built in-sample from the golden KV
// (what the codec tests round-trip against).
KvCodec GoldenInSampleCodec();

}  // namespace ctx::codec::testing
