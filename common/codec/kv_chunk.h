// What the codec encodes: one chunk of a context's KV cache, as float32.
//
// Layout of `data` (row-major):  [layer][K|V][token][C],  C = kv_heads * head_dim.
// A "slot" is one (layer, K|V) pair: slot index = 2 * layer + kv (kv: 0 = K, 1 = V).
// Each slot is a contiguous [T][C] block, so slot s starts at data + s * T * C.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace ctx::codec {

// 16 bytes that identify the model (weights + tokenizer) the KV came from.
using ModelFingerprint = std::array<uint8_t, 16>;

enum class KvPart : int { kKey = 0, kValue = 1 };

struct KvGeometry {
  int layers = 0;
  int kv_heads = 0;
  int head_dim = 0;

  int channels() const { return kv_heads * head_dim; }  // C
  // C without int overflow, for validating untrusted geometry (kv_heads, head_dim come from
  // u16 fields: their product can exceed INT_MAX before anything has been checked).
  int64_t channels64() const { return int64_t{kv_heads} * head_dim; }
  int slots() const { return 2 * layers; }
  bool operator==(const KvGeometry&) const = default;
};

inline int SlotIndex(int layer, KvPart part) { return 2 * layer + static_cast<int>(part); }

// A read-only view of one chunk. The codec never keeps the pointer.
struct KvChunkView {
  KvGeometry geometry;
  uint64_t token_begin = 0;  // absolute position of the first token in the context
  uint32_t token_count = 0;  // T
  ModelFingerprint fingerprint{};
  std::span<const float> data;  // layers * 2 * T * C values, layout above
  // The chunk's token ids [T] (optional: empty = unknown). With them the rANS encoder codes a
  // row whose id already occurred earlier in the chunk against that row's symbols (repeat
  // contexts, docs/kv-wire-format.md §7); without them every row is coded order-0.
  std::span<const int32_t> token_ids;

  size_t ElementsPerSlot() const {
    return static_cast<size_t>(token_count) * static_cast<size_t>(geometry.channels());
  }
  size_t NumElements() const { return ElementsPerSlot() * static_cast<size_t>(geometry.slots()); }
};

}  // namespace ctx::codec
