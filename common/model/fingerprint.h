// A model's identity for the codec and the store: XXH3-128 over the canonical config string
// and every tensor's name, dtype, shape and bytes, in name order. Two loads of the same
// checkpoint give the same value; any changed weight byte or config field changes it.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/model/llama_config.h"
#include "common/tensor/safetensors.h"

namespace ctx::model {

struct ModelFingerprint {
  std::array<uint8_t, 16> bytes{};  // XXH128 canonical (big-endian) form

  std::string Hex() const;  // 32 lowercase hex digits
  bool operator==(const ModelFingerprint&) const = default;
};

ModelFingerprint ComputeFingerprint(const LlamaConfig& config,
                                    const tensor::CheckpointWeights& checkpoint);

}  // namespace ctx::model
