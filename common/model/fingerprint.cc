#include "common/model/fingerprint.h"

#include <xxhash.h>

#include <cstring>

namespace ctx::model {
namespace {

void UpdateU64(XXH3_state_t* state, uint64_t v) {
  unsigned char le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(v >> (8 * i));
  XXH3_128bits_update(state, le, sizeof le);
}

void UpdateString(XXH3_state_t* state, absl::string_view s) {
  UpdateU64(state, s.size());  // length prefix: field boundaries are unambiguous
  XXH3_128bits_update(state, s.data(), s.size());
}

}  // namespace

std::string ModelFingerprint::Hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

ModelFingerprint ComputeFingerprint(const LlamaConfig& config,
                                    const tensor::CheckpointWeights& checkpoint) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  UpdateString(state, "ctxstream-model-fingerprint-v1");
  UpdateString(state, config.CanonicalString());
  for (const tensor::TensorView* t : checkpoint.AllSorted()) {
    UpdateString(state, t->name);
    UpdateString(state, tensor::DTypeName(t->dtype));
    UpdateU64(state, t->shape.size());
    for (int64_t d : t->shape) UpdateU64(state, static_cast<uint64_t>(d));
    UpdateU64(state, t->bytes.size());
    XXH3_128bits_update(state, t->bytes.data(), t->bytes.size());
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state));
  XXH3_freeState(state);
  ModelFingerprint fp;
  std::memcpy(fp.bytes.data(), canonical.digest, fp.bytes.size());
  return fp;
}

}  // namespace ctx::model
