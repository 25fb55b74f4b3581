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
  // Tables 0..C-1: per channel (order-0); with repeat contexts also C..C+A-1: one per q_rep
  // (SlotTable::repeat_freqs), so that mode 0 and mode 3 share one table set.
  bool repeat = false;
  std::vector<RansEncSymbol> enc;  // [C (+A)][A]
  std::vector<float> cost;         // [C (+A)][A] bits per symbol
  RansDecodeTables dec;            // C (+A) tables
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
