#include "tools/kvquality/quant_methods.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/codec/quantizer.h"

namespace ctx::kveval {

namespace {

constexpr int kAnchorGroup = 10;  // CacheGen paper §5.2: groups of 10 contiguous tokens

}  // namespace

absl::StatusOr<QuantMethod> ParseQuantMethod(const std::string& name) {
  if (name == "tok") return QuantMethod::kPerToken;
  if (name == "kch") return QuantMethod::kKeyPerChannel;
  if (name == "dL") return QuantMethod::kKeyDeltaAnchor;
  return absl::InvalidArgumentError(absl::StrCat("unknown method '", name, "' (tok, kch, dL)"));
}

std::vector<codec::LevelSpec> CacheGenLevels() {
  struct T {
    const char* name;
    uint16_t k[6], v[6];
  };
  constexpr T kTables[] = {
      {"CG-L0", {32, 32, 32, 32, 32, 32}, {32, 32, 32, 32, 32, 32}},
      {"CG-L1", {32, 32, 16, 16, 16, 16}, {32, 16, 16, 16, 16, 16}},
      {"CG-L2", {16, 16, 12, 12, 12, 12}, {16, 8, 8, 8, 8, 8}},
      {"CG-L3", {12, 12, 8, 8, 8, 8}, {8, 6, 6, 6, 6, 6}},
      {"CG-L4", {8, 8, 6, 6, 6, 6}, {6, 4, 4, 4, 4, 4}},
  };
  std::vector<codec::LevelSpec> out;
  for (const T& t : kTables) {
    codec::LevelSpec l;
    l.name = t.name;
    l.key_bins.assign(t.k, t.k + 6);
    l.value_bins.assign(t.v, t.v + 6);
    out.push_back(l);
  }
  return out;
}

MethodQuantizer::MethodQuantizer(QuantMethod method, codec::LevelSpec bins,
                                 codec::KvGeometry geometry)
    : method_(method), bins_(std::move(bins)), geometry_(geometry) {}

absl::StatusOr<MethodQuantizer::Quantized> MethodQuantizer::Quantize(
    const codec::KvChunkView& chunk) const {
  const int C = geometry_.channels();
  const int T = static_cast<int>(chunk.token_count);
  const size_t per_slot = chunk.ElementsPerSlot();
  Quantized q;
  q.kv.assign(chunk.data.begin(), chunk.data.end());
  q.symbols.resize(geometry_.slots());
  q.kinds.resize(geometry_.slots());
  std::vector<float> col(T), delta(C), anchor(C);
  std::vector<uint8_t> qcol(T);
  for (int slot = 0; slot < geometry_.slots(); ++slot) {
    const int bins = bins_.Bins(slot);
    if (bins == 0) continue;  // not sent: the receiver recomputes it (restored by the caller)
    const int mq = codec::MaxQ(bins);
    const float* x = chunk.data.data() + slot * per_slot;
    float* out = q.kv.data() + slot * per_slot;
    std::vector<uint8_t>& sym = q.symbols[slot];
    sym.resize(per_slot);
    q.kinds[slot].assign(T, 0);
    const bool key = (slot & 1) == 0;
    if (key && method_ == QuantMethod::kKeyPerChannel) {
      for (int c = 0; c < C; ++c) {
        for (int t = 0; t < T; ++t) col[t] = x[static_cast<size_t>(t) * C + c];
        uint16_t scale;
        if (absl::Status s = codec::RowScale(col.data(), T, &scale); !s.ok()) return s;
        codec::QuantizeRow(col.data(), T, mq, scale, qcol.data());
        codec::DequantizeRow(qcol.data(), T, mq, scale, col.data());
        for (int t = 0; t < T; ++t) {
          sym[static_cast<size_t>(t) * C + c] = qcol[t];
          out[static_cast<size_t>(t) * C + c] = col[t];
        }
      }
      q.side_bits += 16.0 * C;
      continue;
    }
    const bool deltas = key && method_ == QuantMethod::kKeyDeltaAnchor;
    for (int t = 0; t < T; ++t) {
      const float* row = x + static_cast<size_t>(t) * C;
      uint8_t* qs = sym.data() + static_cast<size_t>(t) * C;
      float* o = out + static_cast<size_t>(t) * C;
      const bool is_delta = deltas && t % kAnchorGroup != 0;
      const float* src = row;
      if (is_delta) {
        for (int c = 0; c < C; ++c) delta[c] = row[c] - anchor[c];
        src = delta.data();
      }
      uint16_t scale;
      if (absl::Status s = codec::RowScale(src, C, &scale); !s.ok()) return s;
      codec::QuantizeRow(src, C, mq, scale, qs);
      codec::DequantizeRow(qs, C, mq, scale, o);
      if (is_delta) {
        for (int c = 0; c < C; ++c) o[c] += anchor[c];
        q.kinds[slot][t] = 1;
      } else if (deltas) {
        std::memcpy(anchor.data(), o, sizeof(float) * C);
      }
      q.side_bits += 16.0;
    }
  }
  return q;
}

absl::Status MethodQuantizer::AddToTables(const codec::KvChunkView& chunk) {
  absl::StatusOr<Quantized> q = Quantize(chunk);
  if (!q.ok()) return q.status();
  const int C = geometry_.channels();
  for (int slot = 0; slot < geometry_.slots(); ++slot) {
    if (q->symbols[slot].empty()) continue;
    const int A = codec::AlphabetSize(bins_.Bins(slot));
    for (size_t t = 0; t < q->kinds[slot].size(); ++t) {
      std::vector<uint64_t>& h = hist_[{slot, q->kinds[slot][t]}];
      if (h.empty()) h.assign(static_cast<size_t>(C) * A, 0);
      for (int c = 0; c < C; ++c) ++h[static_cast<size_t>(c) * A + q->symbols[slot][t * C + c]];
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Degraded> MethodQuantizer::Degrade(const codec::KvChunkView& chunk) const {
  absl::StatusOr<Quantized> q = Quantize(chunk);
  if (!q.ok()) return q.status();
  const int C = geometry_.channels();
  double bits = q->side_bits;
  Degraded d;
  for (int slot = 0; slot < geometry_.slots(); ++slot) {
    if (q->symbols[slot].empty()) {
      d.missing_slots.push_back(slot);
      continue;
    }
    const int A = codec::AlphabetSize(bins_.Bins(slot));
    for (int kind = 0; kind < 2; ++kind) {
      auto it = hist_.find({slot, kind});
      std::vector<double> cost;  // [C][A] bits, add-one smoothed
      if (it != hist_.end()) {
        cost.resize(it->second.size());
        for (int c = 0; c < C; ++c) {
          double total = A;
          for (int s = 0; s < A; ++s) total += static_cast<double>(it->second[c * A + s]);
          for (int s = 0; s < A; ++s) {
            cost[c * A + s] =
                -std::log2((static_cast<double>(it->second[c * A + s]) + 1.0) / total);
          }
        }
      }
      for (size_t t = 0; t < q->kinds[slot].size(); ++t) {
        if (q->kinds[slot][t] != kind) continue;
        for (int c = 0; c < C; ++c) {
          // No calibration rows of this kind: a uniform code.
          bits += cost.empty() ? std::log2(static_cast<double>(A))
                               : cost[static_cast<size_t>(c) * A + q->symbols[slot][t * C + c]];
        }
      }
    }
  }
  d.kv = std::move(q->kv);
  d.encoded_bytes = static_cast<size_t>(std::llround(bits / 8.0));
  return d;
}

}  // namespace ctx::kveval
