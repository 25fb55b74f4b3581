#include "common/lingua/xlmr_classifier.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/tensor/safetensors.h"
#include "common/tensor/target_clones.h"
#include "common/tensor/vec_math.h"

namespace ctx::lingua {
namespace {

// y[n, out] = x[n, in] · W[out, in]ᵀ + b[out]
void Linear(const float* x, int64_t n, int64_t in, const tensor::PackedMatrix& w, const float* b,
            float* y) {
  tensor::GemmEpilogue e;
  e.bias = b;
  tensor::MatMulPacked(static_cast<int>(n), x, static_cast<int>(in), w, y, w.n(), e);
}

// x[n, h] = LayerNorm(x + residual) with biased variance (residual may be null). Sums go in
// 16 float lanes (fixed order, so deterministic) so that the loops vectorize.
CTX_TARGET_CLONES void AddLayerNorm(float* x, const float* residual, int64_t n, int64_t h,
                                    const float* g, const float* b, double eps) {
  constexpr int kLanes = 16;
  for (int64_t r = 0; r < n; ++r) {
    float* row = x + r * h;
    if (residual != nullptr) {
      const float* res = residual + r * h;
      for (int64_t i = 0; i < h; ++i) row[i] += res[i];
    }
    float lane[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= h; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) lane[j] += row[i + j];
    }
    double sum = 0;
    for (int j = 0; j < kLanes; ++j) sum += lane[j];
    for (; i < h; ++i) sum += row[i];
    const float mean = static_cast<float>(sum / static_cast<double>(h));
    float vlane[kLanes] = {};
    for (i = 0; i + kLanes <= h; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        const float d = row[i + j] - mean;
        vlane[j] += d * d;
      }
    }
    double var = 0;
    for (int j = 0; j < kLanes; ++j) var += vlane[j];
    for (; i < h; ++i) var += static_cast<double>(row[i] - mean) * (row[i] - mean);
    var /= static_cast<double>(h);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    for (i = 0; i < h; ++i) row[i] = (row[i] - mean) * inv * g[i] + b[i];
  }
}

// Softmax over one attention row; `bias` is 0 for attended keys and -inf for masked ones
// (tensor::ExpApprox(-inf) is exactly 0).
CTX_TARGET_CLONES void MaskedSoftmaxRow(float* s, const float* bias, int64_t n) {
  constexpr int kLanes = 16;
  float mx_lane[kLanes];
  for (int j = 0; j < kLanes; ++j) mx_lane[j] = -INFINITY;
  int64_t t = 0;
  for (; t + kLanes <= n; t += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      s[t + j] += bias[t + j];
      mx_lane[j] = s[t + j] > mx_lane[j] ? s[t + j] : mx_lane[j];
    }
  }
  float mx = -INFINITY;
  for (int j = 0; j < kLanes; ++j) mx = mx_lane[j] > mx ? mx_lane[j] : mx;
  for (; t < n; ++t) {
    s[t] += bias[t];
    mx = s[t] > mx ? s[t] : mx;
  }
  float sum_lane[kLanes] = {};
  for (t = 0; t + kLanes <= n; t += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      s[t + j] = tensor::ExpApprox(s[t + j] - mx);
      sum_lane[j] += s[t + j];
    }
  }
  float sum = 0;
  for (int j = 0; j < kLanes; ++j) sum += sum_lane[j];
  for (; t < n; ++t) {
    s[t] = tensor::ExpApprox(s[t] - mx);
    sum += s[t];
  }
  const float inv = 1.0f / sum;
  for (t = 0; t < n; ++t) s[t] *= inv;
}

// Exact GELU (HF "gelu"): 0.5 x (1 + erf(x / sqrt 2)), erf by tensor::ErfApprox (4e-7).
CTX_TARGET_CLONES void GeluErf(float* x, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f;
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + tensor::ErfApprox(x[i] * kInvSqrt2));
}

// Forward's work buffers (sizes grow to the largest batch seen; contents are scratch).
struct ForwardScratch {
  std::vector<float> x, qkv, ctx, scores, key_bias, h, ffn;
};
std::vector<float>& Grow(std::vector<float>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v;
}

}  // namespace

EncoderBatch EncoderBatch::Pad(std::span<const std::vector<int32_t>> seqs, int32_t pad_id) {
  EncoderBatch b;
  b.batch = static_cast<int64_t>(seqs.size());
  for (const auto& s : seqs)
    b.seq_len = std::max<int64_t>(b.seq_len, static_cast<int64_t>(s.size()));
  b.ids.assign(static_cast<size_t>(b.batch * b.seq_len), pad_id);
  b.mask.assign(b.ids.size(), 0);
  for (int64_t r = 0; r < b.batch; ++r) {
    const auto& s = seqs[static_cast<size_t>(r)];
    std::copy(s.begin(), s.end(), b.ids.begin() + r * b.seq_len);
    std::fill_n(b.mask.begin() + r * b.seq_len, s.size(), uint8_t{1});
  }
  return b;
}

absl::StatusOr<std::unique_ptr<XlmrClassifier>> XlmrClassifier::Load(const std::string& model_dir,
                                                                     int64_t added_token_base,
                                                                     int64_t num_added_tokens) {
  auto cfg = XlmrConfig::Load(model_dir);
  if (!cfg.ok()) return cfg.status();
  auto weights = tensor::CheckpointWeights::Open(model_dir);
  if (!weights.ok()) return weights.status();
  auto m = std::unique_ptr<XlmrClassifier>(new XlmrClassifier());
  m->config_ = *cfg;
  const XlmrConfig& c = m->config_;
  const int64_t H = c.hidden_size, I = c.intermediate_size;

  // Tensor names: "roberta." prefix (HF); fall back to none for bare encoders.
  std::string prefix = "roberta.";
  if (!weights->Get("roberta.embeddings.word_embeddings.weight").ok() &&
      weights->Get("embeddings.word_embeddings.weight").ok()) {
    prefix = "";
  }
  absl::Status st;
  auto get = [&](const std::string& name, std::initializer_list<int64_t> shape) {
    std::vector<int64_t> s(shape);
    auto v = weights->GetFloat(name, s);
    if (!v.ok()) {
      if (st.ok()) st = v.status();
      return std::vector<float>();
    }
    return *std::move(v);
  };
  // An empty matrix when `w` is empty (a failed get: st holds the error).
  auto Pack = [](const std::vector<float>& w, int rows, int cols) {
    if (w.size() != static_cast<size_t>(rows) * static_cast<size_t>(cols)) {
      return tensor::PackedMatrix();
    }
    return tensor::PackedMatrix(w.data(), rows, cols, cols);
  };
  m->word_emb_ = get(prefix + "embeddings.word_embeddings.weight", {c.vocab_size, H});
  m->pos_emb_ =
      get(prefix + "embeddings.position_embeddings.weight", {c.max_position_embeddings, H});
  auto type = get(prefix + "embeddings.token_type_embeddings.weight", {c.type_vocab_size, H});
  if (!type.empty()) m->type_emb0_.assign(type.begin(), type.begin() + H);
  m->emb_ln_g_ = get(prefix + "embeddings.LayerNorm.weight", {H});
  m->emb_ln_b_ = get(prefix + "embeddings.LayerNorm.bias", {H});
  for (int64_t l = 0; l < c.num_layers && st.ok(); ++l) {
    const std::string p = absl::StrCat(prefix, "encoder.layer.", l, ".");
    Layer L;
    std::vector<float> w_qkv;
    w_qkv.reserve(static_cast<size_t>(3 * H * H));
    L.b_qkv.reserve(static_cast<size_t>(3 * H));
    for (const char* part : {"query", "key", "value"}) {
      auto w = get(p + "attention.self." + part + ".weight", {H, H});
      auto b = get(p + "attention.self." + part + ".bias", {H});
      w_qkv.insert(w_qkv.end(), w.begin(), w.end());
      L.b_qkv.insert(L.b_qkv.end(), b.begin(), b.end());
    }
    if (!st.ok()) break;
    const int h = static_cast<int>(H), i = static_cast<int>(I);
    L.w_qkv = tensor::PackedMatrix(w_qkv.data(), 3 * h, h, h);
    L.w_o = Pack(get(p + "attention.output.dense.weight", {H, H}), h, h);
    L.b_o = get(p + "attention.output.dense.bias", {H});
    L.ln1_g = get(p + "attention.output.LayerNorm.weight", {H});
    L.ln1_b = get(p + "attention.output.LayerNorm.bias", {H});
    L.w_1 = Pack(get(p + "intermediate.dense.weight", {I, H}), i, h);
    L.b_1 = get(p + "intermediate.dense.bias", {I});
    L.w_2 = Pack(get(p + "output.dense.weight", {H, I}), h, i);
    L.b_2 = get(p + "output.dense.bias", {H});
    L.ln2_g = get(p + "output.LayerNorm.weight", {H});
    L.ln2_b = get(p + "output.LayerNorm.bias", {H});
    m->layers_.push_back(std::move(L));
  }
  m->cls_w_ = Pack(get("classifier.weight", {c.num_labels, H}), static_cast<int>(c.num_labels),
                   static_cast<int>(H));
  m->cls_b_ = get("classifier.bias", {c.num_labels});
  if (!st.ok()) return st;

  m->num_ids_ = c.vocab_size;
  if (num_added_tokens > 0 && added_token_base >= 0) {
    const int64_t need = added_token_base + num_added_tokens;
    if (need > c.vocab_size) {
      if (added_token_base != c.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            model_dir, ": vocab_size ", c.vocab_size, " matches neither the tokenizer (",
            added_token_base, " ids) nor tokenizer + ", num_added_tokens, " [NEWi] tokens"));
      }
      // Mean row for the missing [NEWi] embeddings.
      std::vector<double> mean(static_cast<size_t>(H), 0.0);
      for (int64_t r = 0; r < c.vocab_size; ++r)
        for (int64_t i = 0; i < H; ++i)
          mean[static_cast<size_t>(i)] += m->word_emb_[static_cast<size_t>(r * H + i)];
      m->word_emb_.resize(static_cast<size_t>(need * H));
      for (int64_t r = c.vocab_size; r < need; ++r)
        for (int64_t i = 0; i < H; ++i)
          m->word_emb_[static_cast<size_t>(r * H + i)] =
              static_cast<float>(mean[static_cast<size_t>(i)] / static_cast<double>(c.vocab_size));
      m->num_ids_ = need;
    }
  }
  return m;
}

absl::StatusOr<EncoderOutput> XlmrClassifier::Forward(const EncoderBatch& batch,
                                                      bool want_hidden) const {
  const XlmrConfig& c = config_;
  const int64_t B = batch.batch, T = batch.seq_len, H = c.hidden_size, I = c.intermediate_size;
  const int64_t NH = c.num_heads, D = c.head_dim(), N = B * T;
  if (B < 0 || T < 0 || batch.ids.size() != static_cast<size_t>(N) ||
      batch.mask.size() != static_cast<size_t>(N)) {
    return absl::InvalidArgumentError("Forward: ids/mask sizes do not match batch x seq_len");
  }
  EncoderOutput out;
  if (N == 0) return out;

  // Embeddings. Positions follow fairseq/HF: counted over ids != pad, pads get `pad`.
  // Work buffers reused by this thread's calls: fresh multi-megabyte vectors cost page faults
  // and zeroing on every call (a third of a batch-4 forward before).
  thread_local ForwardScratch scratch;
  std::vector<float>& x = Grow(scratch.x, N * H);
  for (int64_t b = 0; b < B; ++b) {
    int64_t count = 0;
    for (int64_t t = 0; t < T; ++t) {
      const int32_t id = batch.ids[static_cast<size_t>(b * T + t)];
      if (id < 0 || id >= num_ids_) {
        return absl::InvalidArgumentError(
            absl::StrCat("Forward: token id ", id, " outside [0, ", num_ids_, ")"));
      }
      const bool real = id != c.pad_token_id;
      if (real) ++count;
      const int64_t pos = real ? count + c.pad_token_id : c.pad_token_id;
      if (pos >= c.max_position_embeddings) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Forward: sequence longer than the position table allows (", max_seq_len(), ")"));
      }
      float* row = x.data() + (b * T + t) * H;
      const float* we = word_emb_.data() + static_cast<int64_t>(id) * H;
      const float* pe = pos_emb_.data() + pos * H;
      for (int64_t i = 0; i < H; ++i) row[i] = we[i] + pe[i] + type_emb0_[static_cast<size_t>(i)];
    }
  }
  AddLayerNorm(x.data(), nullptr, N, H, emb_ln_g_.data(), emb_ln_b_.data(), c.layer_norm_eps);
  if (want_hidden) out.hidden_states.emplace_back(x.begin(), x.begin() + N * H);

  std::vector<float>& qkv = Grow(scratch.qkv, N * 3 * H);  // [N, 3H]: q | k | v
  std::vector<float>& ctx = Grow(scratch.ctx, N * H);      // attention output before W_o
  std::vector<float>& scores = Grow(scratch.scores, T * T);
  std::vector<float>& key_bias = Grow(scratch.key_bias, T);
  std::vector<float>& h = Grow(scratch.h, N * H);
  std::vector<float>& ffn = Grow(scratch.ffn, N * I);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int ld = static_cast<int>(3 * H);

  for (const Layer& L : layers_) {
    Linear(x.data(), N, H, L.w_qkv, L.b_qkv.data(), qkv.data());
    for (int64_t b = 0; b < B; ++b) {
      const uint8_t* mask = batch.mask.data() + b * T;
      bool any_key = false;
      for (int64_t t = 0; t < T; ++t) {
        any_key |= mask[t] != 0;
        key_bias[static_cast<size_t>(t)] = mask[t] ? 0.0f : -INFINITY;
      }
      for (int64_t hd = 0; hd < NH; ++hd) {
        const float* q = qkv.data() + b * T * 3 * H + hd * D;
        const float* k = q + H;
        const float* v = q + 2 * H;
        // scores[T, T] = scale · Q_h K_hᵀ
        tensor::GemmEpilogue e;
        e.alpha = scale;
        tensor::MatMulNT(static_cast<int>(T), static_cast<int>(T), static_cast<int>(D), q, ld, k,
                         ld, scores.data(), static_cast<int>(T), e);
        for (int64_t r = 0; r < T; ++r) {
          float* s = scores.data() + r * T;
          if (!any_key) {  // HF: every key at finfo.min -> uniform weights
            std::fill_n(s, T, 1.0f / static_cast<float>(T));
            continue;
          }
          MaskedSoftmaxRow(s, key_bias.data(), T);
        }
        // ctx[:, head] = P · V_h
        tensor::MatMulNN(static_cast<int>(T), static_cast<int>(D), static_cast<int>(T),
                         scores.data(), static_cast<int>(T), v, ld, ctx.data() + b * T * H + hd * D,
                         static_cast<int>(H));
      }
    }
    Linear(ctx.data(), N, H, L.w_o, L.b_o.data(), h.data());
    AddLayerNorm(h.data(), x.data(), N, H, L.ln1_g.data(), L.ln1_b.data(), c.layer_norm_eps);
    Linear(h.data(), N, H, L.w_1, L.b_1.data(), ffn.data());
    GeluErf(ffn.data(), N * I);
    Linear(ffn.data(), N, I, L.w_2, L.b_2.data(), x.data());
    AddLayerNorm(x.data(), h.data(), N, H, L.ln2_g.data(), L.ln2_b.data(), c.layer_norm_eps);
    if (want_hidden) out.hidden_states.emplace_back(x.begin(), x.begin() + N * H);
  }
  out.logits.resize(static_cast<size_t>(N * c.num_labels));
  Linear(x.data(), N, H, cls_w_, cls_b_.data(), out.logits.data());
  return out;
}

absl::StatusOr<std::vector<std::vector<float>>> XlmrClassifier::KeepProbs(
    std::span<const std::vector<int32_t>> seqs) const {
  EncoderBatch batch = EncoderBatch::Pad(seqs, static_cast<int32_t>(config_.pad_token_id));
  auto out = Forward(batch);
  if (!out.ok()) return out.status();
  std::vector<std::vector<float>> probs(seqs.size());
  for (size_t r = 0; r < seqs.size(); ++r) {
    probs[r].resize(seqs[r].size());
    for (size_t t = 0; t < seqs[r].size(); ++t) {
      const float* z = out->logits.data() +
                       (static_cast<int64_t>(r) * batch.seq_len + static_cast<int64_t>(t)) * 2;
      // softmax over 2 labels, index 1 = keep
      const float mx = std::max(z[0], z[1]);
      const float e0 = std::exp(z[0] - mx), e1 = std::exp(z[1] - mx);
      probs[r][t] = e1 / (e0 + e1);
    }
  }
  return probs;
}

}  // namespace ctx::lingua
