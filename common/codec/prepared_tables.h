// Internal: the profile's static tables in the forms the coder needs, built once per KvCodec.
#pragma once

#include <vector>

#include "common/codec/profile.h"
#include "common/codec/rans_decoder.h"
#include "common/codec/rans_encoder.h"

namespace ctx::codec {

struct PreparedSlotTable {
  int slot = 0;
  int bins = 0;
  int alphabet = 0;
  std::vector<RansEncSymbol> enc;  // [C][A]
  std::vector<float> cost;         // [C][A] bits per symbol
  RansDecodeTables dec;            // C tables
};

struct PreparedTables {
  std::vector<PreparedSlotTable> tables;
  const PreparedSlotTable* Find(int slot, int bins) const {
    for (const PreparedSlotTable& t : tables) {
      if (t.slot == slot && t.bins == bins) return &t;
    }
    return nullptr;
  }
};

// freqs [count][A] -> encoder symbols [count][A].
std::vector<RansEncSymbol> BuildEncodeSymbols(std::span<const uint16_t> freqs, int alphabet);

}  // namespace ctx::codec
