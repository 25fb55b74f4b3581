// KvCodec::DecodeRans: validates the whole payload layout first, then decodes the chunk's one
// rANS stream slot by slot, fused with dequantization, then adds each slot's refinement bits
// (if any). Every length is checked against its section before use; the rANS decoder is
// bounds-checked.
#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/codec/byte_io.h"
#include "common/codec/codec.h"
#include "common/codec/freq_table.h"
#include "common/codec/prepared_tables.h"
#include "common/codec/quantizer.h"
#include "common/codec/rans_decoder.h"
#include "common/codec/repeat_map.h"

namespace ctx::codec {

namespace {

struct SlotPlan {
  int slot = 0;
  int bins = 0;
  int refine = 0;
  TableMode mode = TableMode::kProfile;
  const uint8_t* scales = nullptr;  // u16 lo_f16, u16 ratio_m, T u8 codes
  const RansDecodeTables* tables = nullptr;
  int table_stride = 1;
  const uint8_t* refine_bits = nullptr;  // RefineBytes(T*C, refine) bytes of section 4
};

}  // namespace

absl::Status KvCodec::DecodeRans(const ChunkHeader& h, absl::string_view payload,
                                 std::span<float> out) const {
  auto sections_or = ReadSections(payload, 6);
  if (!sections_or.ok()) return sections_or.status();
  const std::vector<absl::string_view>& sec = *sections_or;
  const int channels = h.geometry.channels();
  const size_t t_count = h.token_count;
  const size_t per_slot = t_count * channels;
  const size_t present = static_cast<size_t>(h.SlotsPresent());
  const size_t scale_entry = 4 + t_count;
  if (sec[0].size() != present * 3 || sec[1].size() != present * scale_entry) {
    return absl::DataLossError("KV chunk: slot directory or scale section has the wrong size");
  }

  ByteReader dir(sec[0]), tables(sec[2]);
  size_t refine_offset = 0;  // into section 4
  std::vector<SlotPlan> plans;
  std::vector<RansDecodeTables> chunk_tables;
  chunk_tables.reserve(present);  // plans point into it: no reallocation
  std::vector<uint16_t> freqs;
  bool any_repeat = false;
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    if (!h.SlotPresent(slot)) continue;
    SlotPlan p;
    p.slot = slot;
    p.bins = 2 * dir.U8();
    const uint8_t mode = dir.U8();
    p.refine = dir.U8();
    if (!dir.ok() || !ValidBins(p.bins) || mode > 3 || p.refine > kMaxRefineBits) {
      return absl::DataLossError(absl::StrCat("KV chunk: slot ", slot, " directory entry invalid"));
    }
    p.mode = static_cast<TableMode>(mode);
    p.scales = reinterpret_cast<const uint8_t*>(sec[1].data()) + plans.size() * scale_entry;
    if (p.refine > 0) {
      const size_t n = RefineBytes(per_slot, p.refine);
      if (sec[4].size() - refine_offset < n) {
        return absl::DataLossError(
            absl::StrCat("KV chunk: refinement section too short for slot ", slot));
      }
      p.refine_bits = reinterpret_cast<const uint8_t*>(sec[4].data()) + refine_offset;
      refine_offset += n;
    }
    const int a = AlphabetSize(p.bins);
    if (p.mode == TableMode::kProfile || p.mode == TableMode::kProfileRepeat) {
      // The tables are [C][A] for the profile's geometry: a chunk naming them with another
      // geometry (the hash covers the profile's geometry, not the chunk's) would index past
      // them (heap overflow found by tests/fuzz).
      if (h.profile_hash == 0 || h.profile_hash != tables_hash_ ||
          h.fingerprint != profile_->fingerprint || !(h.geometry == profile_->geometry)) {
        return absl::FailedPreconditionError(
            absl::StrCat("KV chunk was coded with codec profile tables ", h.profile_hash,
                         " but this decoder has ", tables_hash_, " (load the matching profile)"));
      }
      const PreparedSlotTable* t = prepared_->Find(slot, p.bins);
      if (!t) return absl::DataLossError("KV chunk refers to a profile table that does not exist");
      if (p.mode == TableMode::kProfileRepeat && !t->repeat) {
        return absl::DataLossError("KV chunk refers to profile repeat tables that do not exist");
      }
      any_repeat |= p.mode == TableMode::kProfileRepeat;
      p.tables = &t->dec;
    } else {
      const int count = p.mode == TableMode::kChunkPerChannel ? channels : 1;
      freqs.resize(static_cast<size_t>(count) * a);
      for (int k = 0; k < count; ++k) {
        absl::Status s = ReadFreqTable(&tables, std::span<uint16_t>(freqs.data() + k * a, a));
        if (!s.ok()) return s;
      }
      chunk_tables.push_back(RansDecodeTables::Build(freqs, a));
      p.tables = &chunk_tables.back();
      p.table_stride = count == 1 ? 0 : 1;
    }
    plans.push_back(p);
  }
  if (tables.remaining() != 0) {
    return absl::DataLossError("KV chunk: tables section has trailing bytes");
  }
  if (refine_offset != sec[4].size()) {
    return absl::DataLossError("KV chunk: refinement section has trailing bytes");
  }
  // Repeat map: present exactly when some slot uses repeat contexts; every entry names an
  // earlier row (so the decoder only ever reads symbols it has decoded).
  std::vector<int32_t> rep_rows;
  if (any_repeat) {
    if (absl::Status s = ReadRepeatMap(sec[5], t_count, &rep_rows); !s.ok()) return s;
  } else if (!sec[5].empty()) {
    return absl::DataLossError("KV chunk: repeat map without a slot that uses it");
  }
  static thread_local std::vector<uint8_t> rep_symbols;  // one slot's decoded symbols [T][C]
  if (any_repeat && rep_symbols.size() < per_slot) rep_symbols.resize(per_slot);

  // Decode each slot straight into dequantized floats (row_step = s_code / MAX per token).
  RansDecoder rans;
  if (absl::Status s = rans.Begin(sec[3]); !s.ok()) {
    return absl::DataLossError(absl::StrCat("KV chunk: ", s.message()));
  }
  std::vector<float> row_step(t_count);
  float scale[kScaleCodes];
  size_t next = 0;
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    float* dst = out.data() + slot * per_slot;
    if (next >= plans.size() || plans[next].slot != slot) {
      std::fill(dst, dst + per_slot, 0.f);
      continue;
    }
    const SlotPlan& p = plans[next++];
    const ScaleGrid grid{static_cast<uint16_t>(p.scales[0] | p.scales[1] << 8),
                         static_cast<uint16_t>(p.scales[2] | p.scales[3] << 8)};
    if (!grid.Expand(scale)) {
      return absl::DataLossError(absl::StrCat("KV chunk slot ", slot, ": invalid scale grid"));
    }
    const float max_q = static_cast<float>(MaxQ(p.bins));
    const uint8_t* codes = p.scales + 4;
    for (size_t t = 0; t < t_count; ++t) row_step[t] = scale[codes[t]] / max_q;
    if (next < plans.size()) rans.PrefetchNext(*plans[next].tables, plans[next].table_stride);
    if (absl::Status s = p.mode == TableMode::kProfileRepeat
                             ? rans.BlockDequantizeRepeat(t_count, channels, *p.tables,
                                                          MaxQ(p.bins), row_step.data(),
                                                          rep_rows.data(), rep_symbols.data(), dst)
                             : rans.BlockDequantize(t_count, channels, *p.tables, p.table_stride,
                                                    MaxQ(p.bins), row_step.data(), dst);
        !s.ok()) {
      return absl::DataLossError(absl::StrCat("KV chunk slot ", slot, ": ", s.message()));
    }
    if (p.refine > 0 &&
        !ApplyRefineBits(p.refine_bits, t_count, channels, p.refine, row_step.data(), dst)) {
      return absl::DataLossError(
          absl::StrCat("KV chunk slot ", slot, ": refinement padding bits not zero"));
    }
  }
  if (absl::Status s = rans.Finish(); !s.ok()) {
    return absl::DataLossError(absl::StrCat("KV chunk: ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<LevelSpec> RansChunkLevelSpec(const ParsedChunk& chunk) {
  const ChunkHeader& h = chunk.header;
  if (h.kind != EncodingKind::kRans) {
    return absl::InvalidArgumentError("not a rans (CacheGen-level) chunk");
  }
  auto sections = ReadSections(chunk.payload, 6);
  if (!sections.ok()) return sections.status();
  const absl::string_view dir = (*sections)[0];
  if (dir.size() != 3 * static_cast<size_t>(h.SlotsPresent())) {
    return absl::DataLossError("KV chunk: slot directory has the wrong size");
  }
  const int layers = h.geometry.layers;
  LevelSpec spec;
  spec.key_bins.assign(layers, 0);
  spec.value_bins.assign(layers, 0);
  spec.key_refine.assign(layers, 0);
  spec.value_refine.assign(layers, 0);
  size_t i = 0;
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    if (!h.SlotPresent(slot)) continue;
    const int bins = 2 * static_cast<uint8_t>(dir[3 * i]);
    const int refine = static_cast<uint8_t>(dir[3 * i + 2]);
    ++i;
    if (!ValidBins(bins) || refine > kMaxRefineBits) {
      return absl::DataLossError(absl::StrCat("KV chunk: slot ", slot, " directory entry invalid"));
    }
    (slot & 1 ? spec.value_bins : spec.key_bins)[slot / 2] = static_cast<uint16_t>(bins);
    (slot & 1 ? spec.value_refine : spec.key_refine)[slot / 2] = static_cast<uint8_t>(refine);
  }
  return spec;
}

}  // namespace ctx::codec
