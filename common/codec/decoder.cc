// KvCodec::DecodeRans: validates the whole payload layout first, then decodes slot by slot.
// Every length is checked against its section before use; the rANS decoder is bounds-checked.
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
#include "common/tensor/dtype.h"

namespace ctx::codec {

namespace {

struct SlotPlan {
  int slot = 0;
  int bins = 0;
  TableMode mode = TableMode::kProfile;
  absl::string_view stream;
  const uint8_t* scales = nullptr;  // T little-endian fp16
  const RansDecodeTables* tables = nullptr;
  int table_stride = 1;
};

}  // namespace

absl::Status KvCodec::DecodeRans(const ChunkHeader& h, absl::string_view payload,
                                 std::span<float> out) const {
  auto sections_or = ReadSections(payload, 4);
  if (!sections_or.ok()) return sections_or.status();
  const std::vector<absl::string_view>& sec = *sections_or;
  const int channels = h.geometry.channels();
  const size_t t_count = h.token_count;
  const size_t per_slot = t_count * channels;
  const size_t present = static_cast<size_t>(h.SlotsPresent());
  if (sec[0].size() != present * 6 || sec[1].size() != present * t_count * 2) {
    return absl::DataLossError("KV chunk: slot directory or scale section has the wrong size");
  }

  ByteReader dir(sec[0]), tables(sec[2]);
  std::vector<SlotPlan> plans;
  std::vector<RansDecodeTables> chunk_tables;
  chunk_tables.reserve(present);  // plans point into it: no reallocation
  std::vector<uint16_t> freqs;
  size_t stream_offset = 0;
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    if (!h.SlotPresent(slot)) continue;
    SlotPlan p;
    p.slot = slot;
    p.bins = 2 * dir.U8();
    const uint8_t mode = dir.U8();
    const uint32_t len = dir.U32();
    if (!dir.ok() || !ValidBins(p.bins) || mode > 2 || len > sec[3].size() - stream_offset) {
      return absl::DataLossError(absl::StrCat("KV chunk: slot ", slot, " directory entry invalid"));
    }
    p.mode = static_cast<TableMode>(mode);
    p.stream = sec[3].substr(stream_offset, len);
    stream_offset += len;
    p.scales = reinterpret_cast<const uint8_t*>(sec[1].data()) + plans.size() * t_count * 2;
    const int a = AlphabetSize(p.bins);
    if (p.mode == TableMode::kProfile) {
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
  if (stream_offset != sec[3].size() || tables.remaining() != 0) {
    return absl::DataLossError("KV chunk: streams or tables section has trailing bytes");
  }
  for (size_t i = 0; i < present * t_count; ++i) {
    const uint16_t s = static_cast<uint16_t>(sec[1][2 * i] & 0xff) |
                       static_cast<uint16_t>((sec[1][2 * i + 1] & 0xff) << 8);
    if ((s & 0x7c00) == 0x7c00) return absl::DataLossError("KV chunk: scale is inf/NaN");
  }

  // Decode each slot straight into dequantized floats (row_step = scale / MAX per token).
  std::vector<float> row_step(t_count);
  size_t next = 0;
  for (int slot = 0; slot < h.geometry.slots(); ++slot) {
    float* dst = out.data() + slot * per_slot;
    if (next >= plans.size() || plans[next].slot != slot) {
      std::fill(dst, dst + per_slot, 0.f);
      continue;
    }
    const SlotPlan& p = plans[next++];
    const int max_q = MaxQ(p.bins);
    for (size_t t = 0; t < t_count; ++t) {
      const uint16_t scale = static_cast<uint16_t>(p.scales[2 * t] | p.scales[2 * t + 1] << 8);
      row_step[t] = tensor::HalfToFloat(scale) / static_cast<float>(max_q);
    }
    if (absl::Status s = RansDecodeDequantize(p.stream, t_count, channels, *p.tables,
                                              p.table_stride, max_q, row_step.data(), dst);
        !s.ok()) {
      return absl::DataLossError(absl::StrCat("KV chunk slot ", slot, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace ctx::codec
