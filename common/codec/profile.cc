#include "common/codec/profile.h"

#include <xxhash.h>

#include <cmath>
#include <cstring>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/codec/byte_io.h"
#include "common/codec/freq_table.h"
#include "common/codec/quantizer.h"
#include "common/codec/repeat_map.h"
#include "common/codec/wire_format.h"

namespace ctx::codec {

// File layout (little-endian), version 3 (the only one read):
//   u32 magic "CTXP"  u16 version  u16 reserved(0)
//   u8[16] fingerprint  u16 layers  u16 kv_heads  u16 head_dim  u16 default_level
//   u16 level_count, per level:
//     u16 name_len, name, u16 key_bins[layers], u16 value_bins[layers],
//     u8 key_refine[layers], u8 value_refine[layers]
//     f64 bits_per_element, f64 kl_nats, f64 delta_ppl_pct, f64 top1_agreement
//   u32 table_count, per table: u16 slot, u16 bins, u16 freqs[C * A],
//     u16 repeat_count (0 or A), u16 repeat_freqs[repeat_count * A]
//   u64 XXH3-64 of every preceding byte
namespace {

void WriteTables(const CodecProfile& p, ByteWriter* w) {
  w->U32(static_cast<uint32_t>(p.tables.size()));
  for (const SlotTable& t : p.tables) {
    w->U16(static_cast<uint16_t>(t.slot));
    w->U16(static_cast<uint16_t>(t.bins));
    for (uint16_t f : t.freqs) w->U16(f);
    const size_t a = static_cast<size_t>(AlphabetSize(t.bins));
    w->U16(static_cast<uint16_t>(t.repeat_freqs.size() / a));
    for (uint16_t f : t.repeat_freqs) w->U16(f);
  }
}

bool LevelFits(const LevelSpec& l, int layers) {
  auto refine_fits = [layers](const std::vector<uint8_t>& r) {
    return r.empty() || static_cast<int>(r.size()) == layers;
  };
  return static_cast<int>(l.key_bins.size()) == layers &&
         static_cast<int>(l.value_bins.size()) == layers && refine_fits(l.key_refine) &&
         refine_fits(l.value_refine);
}

}  // namespace

uint64_t CodecProfile::TablesHash() const {
  if (tables.empty()) return 0;
  std::string bytes;
  ByteWriter w(&bytes);
  w.U16(static_cast<uint16_t>(geometry.layers));
  w.U16(static_cast<uint16_t>(geometry.kv_heads));
  w.U16(static_cast<uint16_t>(geometry.head_dim));
  WriteTables(*this, &w);
  const uint64_t h = XXH3_64bits(bytes.data(), bytes.size());
  return h ? h : 1;  // 0 means "no profile" on the wire
}

const SlotTable* CodecProfile::FindTable(int slot, int bins) const {
  for (const SlotTable& t : tables) {
    if (t.slot == slot && t.bins == bins) return &t;
  }
  return nullptr;
}

absl::Status ValidateProfile(const CodecProfile& p) {
  const KvGeometry& g = p.geometry;
  if (g.layers < 1 || g.layers > kMaxLayers || g.kv_heads < 1 || g.head_dim < 1 ||
      g.channels64() > kMaxChannels) {
    return absl::InvalidArgumentError("codec profile geometry invalid");
  }
  if (!p.levels.empty() &&
      (p.default_level < 0 || p.default_level >= static_cast<int>(p.levels.size()))) {
    return absl::InvalidArgumentError("codec profile default level out of range");
  }
  if (p.levels.size() > 255) return absl::InvalidArgumentError("codec profile has > 255 levels");
  for (const LevelSpec& l : p.levels) {
    if (!LevelFits(l, g.layers)) {
      return absl::InvalidArgumentError(
          absl::StrCat("level ", l.name, ": bins or refinement bits per layer missing"));
    }
    for (int s = 0; s < g.slots(); ++s) {
      const int b = l.Bins(s);
      if (b != 0 && !ValidBins(b)) {
        return absl::InvalidArgumentError(
            absl::StrCat("level ", l.name, ": ", b, " bins (need 0 or even in [4, 256])"));
      }
      const int r = l.Refine(s);
      if (r > kMaxRefineBits || (b == 0 && r != 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("level ", l.name, ": ", r, " refinement bits for slot ", s, " (need 0..",
                         kMaxRefineBits, ", and 0 where the slot is not sent)"));
      }
    }
  }
  std::set<std::pair<int, int>> seen;
  const size_t c = static_cast<size_t>(g.channels());
  for (const SlotTable& t : p.tables) {
    if (t.slot < 0 || t.slot >= g.slots() || !ValidBins(t.bins) ||
        !seen.insert({t.slot, t.bins}).second) {
      return absl::InvalidArgumentError(absl::StrCat("codec profile table (slot ", t.slot,
                                                     ", bins ", t.bins, ") invalid or duplicated"));
    }
    const size_t a = static_cast<size_t>(AlphabetSize(t.bins));
    if (t.freqs.size() != c * a) return absl::InvalidArgumentError("codec profile table size");
    if (!t.repeat_freqs.empty() && t.repeat_freqs.size() != a * a) {
      return absl::InvalidArgumentError("codec profile repeat tables size");
    }
    for (const std::vector<uint16_t>* f : {&t.freqs, &t.repeat_freqs}) {
      for (size_t row = 0; row < f->size() / a; ++row) {
        uint32_t sum = 0;
        for (size_t s = 0; s < a; ++s) {
          if ((*f)[row * a + s] == 0)
            return absl::InvalidArgumentError("zero frequency in profile");
          sum += (*f)[row * a + s];
        }
        if (sum != kProbScale)
          return absl::InvalidArgumentError("profile table does not sum to 2^kProbBits");
      }
    }
  }
  return absl::OkStatus();
}

std::string SerializeProfile(const CodecProfile& p) {
  std::string out;
  ByteWriter w(&out);
  w.U32(kProfileMagic);
  w.U16(kProfileVersion);
  w.U16(0);
  w.Bytes(p.fingerprint.data(), p.fingerprint.size());
  w.U16(static_cast<uint16_t>(p.geometry.layers));
  w.U16(static_cast<uint16_t>(p.geometry.kv_heads));
  w.U16(static_cast<uint16_t>(p.geometry.head_dim));
  w.U16(static_cast<uint16_t>(p.default_level));
  w.U16(static_cast<uint16_t>(p.levels.size()));
  for (const LevelSpec& l : p.levels) {
    w.U16(static_cast<uint16_t>(l.name.size()));
    w.Bytes(l.name.data(), l.name.size());
    for (uint16_t b : l.key_bins) w.U16(b);
    for (uint16_t b : l.value_bins) w.U16(b);
    for (int kv = 0; kv < 2; ++kv) {
      for (int j = 0; j < p.geometry.layers; ++j) w.U8(static_cast<uint8_t>(l.Refine(2 * j + kv)));
    }
    w.F64(l.bits_per_element);
    w.F64(l.kl_nats);
    w.F64(l.delta_ppl_pct);
    w.F64(l.top1_agreement);
  }
  WriteTables(p, &w);
  w.U64(XXH3_64bits(out.data(), out.size()));
  return out;
}

absl::StatusOr<CodecProfile> ParseProfile(absl::string_view bytes) {
  if (bytes.size() < 8 + 8) return absl::DataLossError("codec profile truncated");
  const absl::string_view body = bytes.substr(0, bytes.size() - 8);
  ByteReader r(bytes);
  if (r.U32() != kProfileMagic) return absl::DataLossError("not a codec profile (bad magic)");
  const uint16_t version = r.U16();
  if (version != kProfileVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("codec profile version ", version, " not supported (this build reads ",
                     kProfileVersion, "; re-run tools/calibrate to write a current profile)"));
  }
  {
    ByteReader tail(bytes.substr(bytes.size() - 8));
    if (tail.U64() != XXH3_64bits(body.data(), body.size())) {
      return absl::DataLossError("codec profile checksum mismatch (corrupted file)");
    }
  }
  r = ByteReader(body.substr(6));
  CodecProfile p;
  r.U16();  // reserved
  absl::string_view fp = r.Bytes(16);
  p.geometry.layers = r.U16();
  p.geometry.kv_heads = r.U16();
  p.geometry.head_dim = r.U16();
  p.default_level = r.U16();
  if (!r.ok()) return absl::DataLossError("codec profile header truncated");
  std::memcpy(p.fingerprint.data(), fp.data(), 16);
  const int layers = p.geometry.layers;
  if (layers < 1 || layers > kMaxLayers) return absl::InvalidArgumentError("profile: bad layers");
  if (p.geometry.channels64() > kMaxChannels) {
    return absl::InvalidArgumentError("profile: kv_heads * head_dim exceeds 65535 channels");
  }
  const uint16_t level_count = r.U16();
  for (int i = 0; i < level_count && r.ok(); ++i) {
    LevelSpec l;
    const uint16_t name_len = r.U16();
    l.name = std::string(r.Bytes(name_len));
    for (int j = 0; j < layers; ++j) l.key_bins.push_back(r.U16());
    for (int j = 0; j < layers; ++j) l.value_bins.push_back(r.U16());
    for (int j = 0; j < layers; ++j) l.key_refine.push_back(r.U8());
    for (int j = 0; j < layers; ++j) l.value_refine.push_back(r.U8());
    l.bits_per_element = r.F64();
    l.kl_nats = r.F64();
    l.delta_ppl_pct = r.F64();
    l.top1_agreement = r.F64();
    p.levels.push_back(std::move(l));
  }
  const uint32_t table_count = r.U32();
  if (!r.ok()) return absl::DataLossError("codec profile levels truncated");
  const size_t c = static_cast<size_t>(p.geometry.channels());
  for (uint32_t i = 0; i < table_count; ++i) {
    SlotTable t;
    t.slot = r.U16();
    t.bins = r.U16();
    if (!r.ok() || !ValidBins(t.bins)) return absl::DataLossError("codec profile table header bad");
    const size_t n = c * static_cast<size_t>(AlphabetSize(t.bins));
    if (r.remaining() < 2 * n) return absl::DataLossError("codec profile tables truncated");
    t.freqs.resize(n);
    for (uint16_t& f : t.freqs) f = r.U16();
    const size_t a = static_cast<size_t>(AlphabetSize(t.bins));
    const size_t repeat_count = r.U16();
    if (!r.ok() || (repeat_count != 0 && repeat_count != a) ||
        r.remaining() < 2 * repeat_count * a) {
      return absl::DataLossError("codec profile repeat tables bad or truncated");
    }
    t.repeat_freqs.resize(repeat_count * a);
    for (uint16_t& f : t.repeat_freqs) f = r.U16();
    p.tables.push_back(std::move(t));
  }
  if (!r.ok() || r.remaining() != 0) return absl::DataLossError("codec profile has trailing bytes");
  if (absl::Status s = ValidateProfile(p); !s.ok()) return s;
  return p;
}

ProfileBuilder::ProfileBuilder(ModelFingerprint fingerprint, KvGeometry geometry,
                               std::vector<LevelSpec> levels, int default_level)
    : fingerprint_(fingerprint),
      geometry_(geometry),
      levels_(std::move(levels)),
      default_level_(default_level) {
  const size_t c = static_cast<size_t>(geometry_.channels());
  for (const LevelSpec& l : levels_) {
    if (!LevelFits(l, geometry_.layers)) continue;  // Build() leaves such levels unmeasured
    for (int s = 0; s < geometry_.slots(); ++s) {
      const int b = l.Bins(s);
      if (!ValidBins(b)) continue;
      const size_t a = static_cast<size_t>(AlphabetSize(b));
      Hist& h = hist_[{s, b}];
      h.all.assign(c * a, 0);
      h.all_ids.assign(c * a, 0);
      h.fresh.assign(c * a, 0);
      h.repeat.assign(a * a, 0);
    }
  }
}

absl::Status ProfileBuilder::AddChunk(const KvChunkView& chunk) {
  if (!(chunk.geometry == geometry_) || chunk.fingerprint != fingerprint_) {
    return absl::InvalidArgumentError("calibration chunk is from another model or geometry");
  }
  if (chunk.data.size() != chunk.NumElements()) {
    return absl::InvalidArgumentError("calibration chunk data size does not match its geometry");
  }
  if (!chunk.token_ids.empty() && chunk.token_ids.size() != chunk.token_count) {
    return absl::InvalidArgumentError("calibration chunk: token_ids.size() != token_count");
  }
  const int c = geometry_.channels();
  const bool ids = !chunk.token_ids.empty();
  const std::vector<int32_t> rep = RepeatRows(chunk.token_ids);
  // The symbols the encoder will code: same quantizer, same 8-bit log-grid row scales.
  std::vector<uint8_t> q(chunk.ElementsPerSlot());
  std::string scales;
  for (auto& [key, hist] : hist_) {
    const auto [slot, bins] = key;
    const size_t a = static_cast<size_t>(AlphabetSize(bins));
    const float* base = chunk.data.data() + slot * chunk.ElementsPerSlot();
    scales.clear();
    if (absl::Status s = QuantizeSlot(base, chunk.token_count, c, bins, &scales, q.data(), nullptr);
        !s.ok()) {
      return s;
    }
    for (size_t i = 0; i < q.size(); ++i) ++hist.all[(i % c) * a + q[i]];
    if (!ids) continue;
    for (size_t i = 0; i < q.size(); ++i) ++hist.all_ids[(i % c) * a + q[i]];
    for (size_t t = 0; t < chunk.token_count; ++t) {
      const uint8_t* row = q.data() + t * c;
      if (rep[t] == kNoRepeat) {
        for (int ch = 0; ch < c; ++ch) ++hist.fresh[ch * a + row[ch]];
      } else {
        const uint8_t* prev = q.data() + static_cast<size_t>(rep[t]) * c;
        for (int ch = 0; ch < c; ++ch) ++hist.repeat[prev[ch] * a + row[ch]];
      }
    }
  }
  tokens_ += chunk.token_count;
  if (ids) tokens_with_ids_ += chunk.token_count;
  return absl::OkStatus();
}

CodecProfile ProfileBuilder::Build() const {
  CodecProfile p;
  p.fingerprint = fingerprint_;
  p.geometry = geometry_;
  p.levels = levels_;
  p.default_level = default_level_;
  const size_t c = static_cast<size_t>(geometry_.channels());
  std::map<std::pair<int, int>, double> payload_bits;
  // Bits of h[rows][A] under f[rows][A] (f_stride 0: one table for every row).
  auto cost = [](const std::vector<uint64_t>& h, const uint16_t* f, size_t a, size_t f_stride) {
    double bits = 0;
    for (size_t i = 0; i < h.size(); ++i) {
      if (h[i])
        bits += static_cast<double>(h[i]) * SymbolCostBits(f[(i / a) * f_stride * a + i % a]);
    }
    return bits;
  };
  for (const auto& [key, hist] : hist_) {
    SlotTable t;
    t.slot = key.first;
    t.bins = key.second;
    const size_t a = static_cast<size_t>(AlphabetSize(t.bins));
    t.freqs.resize(c * a);
    for (size_t ch = 0; ch < c; ++ch) {
      NormalizeFrequencies(std::span<const uint64_t>(hist.all.data() + ch * a, a),
                           std::span<uint16_t>(t.freqs.data() + ch * a, a));
    }
    double bits = cost(hist.all, t.freqs.data(), a, 1);
    if (tokens_with_ids_ > 0) {
      // Repeat tables: counts + kRepeatPriorCounts pseudo-counts of the slot's pooled order-0
      // distribution (sparse contexts fall back towards order-0), in fixed point.
      std::vector<double> p0(a, 0);
      double n0 = 0;
      for (size_t i = 0; i < hist.all.size(); ++i) {
        p0[i % a] += static_cast<double>(hist.all[i]);
        n0 += static_cast<double>(hist.all[i]);
      }
      constexpr double kFix = 1 << 16;
      t.repeat_freqs.resize(a * a);
      std::vector<uint64_t> row(a);
      for (size_t qr = 0; qr < a; ++qr) {
        for (size_t s = 0; s < a; ++s) {
          const double prior = n0 > 0 ? kRepeatPriorCounts * p0[s] / n0 : 0;
          row[s] = static_cast<uint64_t>(
              std::llround(kFix * (static_cast<double>(hist.repeat[qr * a + s]) + prior)));
        }
        NormalizeFrequencies(row, std::span<uint16_t>(t.repeat_freqs.data() + qr * a, a));
      }
      // Chunks with ids: the cheaper of order-0 and repeat contexts (the encoder's choice).
      const double ids_order0 = cost(hist.all_ids, t.freqs.data(), a, 1);
      const double ids_repeat =
          cost(hist.fresh, t.freqs.data(), a, 1) + cost(hist.repeat, t.repeat_freqs.data(), a, 1);
      bits += std::min(ids_order0, ids_repeat) - ids_order0;
    }
    payload_bits[key] = bits;
    p.tables.push_back(std::move(t));
  }
  if (tokens_ > 0) {
    const double elements = static_cast<double>(tokens_) * c * geometry_.slots();
    for (LevelSpec& l : p.levels) {
      if (!LevelFits(l, geometry_.layers)) continue;
      double bits = 0;
      for (int s = 0; s < geometry_.slots(); ++s) {
        const int b = l.Bins(s);
        if (b == 0) continue;
        // + one 8-bit scale code per token (the per-slot grid's 4 bytes are per chunk)
        // + the raw refinement bits of every element.
        bits += payload_bits[{s, b}] + 8.0 * tokens_ +
                static_cast<double>(l.Refine(s)) * static_cast<double>(tokens_) * c;
      }
      l.bits_per_element = bits / elements;
    }
  }
  return p;
}

}  // namespace ctx::codec
