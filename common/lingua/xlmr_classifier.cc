#include "common/lingua/xlmr_classifier.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/tensor/safetensors.h"

namespace ctx::lingua {
namespace {

// y[n, out] = x[n, in] · W[out, in]ᵀ + b[out]
void Linear(const float* x, int64_t n, int64_t in, const float* w, const float* b, int64_t out,
            float* y) {
  for (int64_t r = 0; r < n; ++r) std::copy(b, b + out, y + r * out);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(out),
              static_cast<int>(in), 1.0f, x, static_cast<int>(in), w, static_cast<int>(in), 1.0f, y,
              static_cast<int>(out));
}

// x[n, h] = LayerNorm(x + residual) with biased variance (residual may be null).
void AddLayerNorm(float* x, const float* residual, int64_t n, int64_t h, const float* g,
                  const float* b, double eps) {
  for (int64_t r = 0; r < n; ++r) {
    float* row = x + r * h;
    if (residual != nullptr) {
      const float* res = residual + r * h;
      for (int64_t i = 0; i < h; ++i) row[i] += res[i];
    }
    double sum = 0;
    for (int64_t i = 0; i < h; ++i) sum += row[i];
    const double mean = sum / static_cast<double>(h);
    double var = 0;
    for (int64_t i = 0; i < h; ++i) {
      const double d = row[i] - mean;
      var += d * d;
    }
    var /= static_cast<double>(h);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    const float m = static_cast<float>(mean);
    for (int64_t i = 0; i < h; ++i) row[i] = (row[i] - m) * inv * g[i] + b[i];
  }
}

// expf for x <= 0 (softmax after subtracting the row max), written branch-free so the loop
// vectorises: 2^n * P(r), n = round(x / ln 2), r = x - n ln 2 (Cody-Waite split), degree-6
// polynomial (Cephes expf; ~1-2 ulp). Inputs below -87.3 (incl. -inf) give exactly 0.
inline float ExpNonPositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float xc = x < -87.3f ? -87.3f : x;
  const float n = std::nearbyint(xc * kLog2e);
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.3f ? 0.0f : p * scale;
}

// Softmax over one attention row; `bias` is 0 for attended keys and -inf for masked ones.
void MaskedSoftmaxRow(float* s, const float* bias, int64_t n) {
  float mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    s[t] += bias[t];
    mx = s[t] > mx ? s[t] : mx;
  }
  float sum = 0;
  for (int64_t t = 0; t < n; ++t) {
    s[t] = ExpNonPositive(s[t] - mx);
    sum += s[t];
  }
  const float inv = 1.0f / sum;
  for (int64_t t = 0; t < n; ++t) s[t] *= inv;
}

// Exact GELU (HF "gelu"): 0.5 x (1 + erf(x / sqrt 2)).
void GeluErf(float* x, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f;
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2));
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
    L.w_qkv.reserve(static_cast<size_t>(3 * H * H));
    L.b_qkv.reserve(static_cast<size_t>(3 * H));
    for (const char* part : {"query", "key", "value"}) {
      auto w = get(p + "attention.self." + part + ".weight", {H, H});
      auto b = get(p + "attention.self." + part + ".bias", {H});
      L.w_qkv.insert(L.w_qkv.end(), w.begin(), w.end());
      L.b_qkv.insert(L.b_qkv.end(), b.begin(), b.end());
    }
    L.w_o = get(p + "attention.output.dense.weight", {H, H});
    L.b_o = get(p + "attention.output.dense.bias", {H});
    L.ln1_g = get(p + "attention.output.LayerNorm.weight", {H});
    L.ln1_b = get(p + "attention.output.LayerNorm.bias", {H});
    L.w_1 = get(p + "intermediate.dense.weight", {I, H});
    L.b_1 = get(p + "intermediate.dense.bias", {I});
    L.w_2 = get(p + "output.dense.weight", {H, I});
    L.b_2 = get(p + "output.dense.bias", {H});
    L.ln2_g = get(p + "output.LayerNorm.weight", {H});
    L.ln2_b = get(p + "output.LayerNorm.bias", {H});
    m->layers_.push_back(std::move(L));
  }
  m->cls_w_ = get("classifier.weight", {c.num_labels, H});
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
  std::vector<float> x(static_cast<size_t>(N * H));
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
  if (want_hidden) out.hidden_states.push_back(x);

  std::vector<float> qkv(static_cast<size_t>(N * 3 * H));  // [N, 3H]: q | k | v
  std::vector<float> ctx(static_cast<size_t>(N * H));      // attention output before W_o
  std::vector<float> scores(static_cast<size_t>(T * T));
  std::vector<float> key_bias(static_cast<size_t>(T));
  std::vector<float> h(static_cast<size_t>(N * H));
  std::vector<float> ffn(static_cast<size_t>(N * I));
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int ld = static_cast<int>(3 * H);

  for (const Layer& L : layers_) {
    Linear(x.data(), N, H, L.w_qkv.data(), L.b_qkv.data(), 3 * H, qkv.data());
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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T),
                    static_cast<int>(T), static_cast<int>(D), scale, q, ld, k, ld, 0.0f,
                    scores.data(), static_cast<int>(T));
        for (int64_t r = 0; r < T; ++r) {
          float* s = scores.data() + r * T;
          if (!any_key) {  // HF: every key at finfo.min -> uniform weights
            std::fill_n(s, T, 1.0f / static_cast<float>(T));
            continue;
          }
          MaskedSoftmaxRow(s, key_bias.data(), T);
        }
        // ctx[:, head] = P · V_h
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(T),
                    static_cast<int>(D), static_cast<int>(T), 1.0f, scores.data(),
                    static_cast<int>(T), v, ld, 0.0f, ctx.data() + b * T * H + hd * D,
                    static_cast<int>(H));
      }
    }
    Linear(ctx.data(), N, H, L.w_o.data(), L.b_o.data(), H, h.data());
    AddLayerNorm(h.data(), x.data(), N, H, L.ln1_g.data(), L.ln1_b.data(), c.layer_norm_eps);
    Linear(h.data(), N, H, L.w_1.data(), L.b_1.data(), I, ffn.data());
    GeluErf(ffn.data(), N * I);
    Linear(ffn.data(), N, I, L.w_2.data(), L.b_2.data(), H, x.data());
    AddLayerNorm(x.data(), h.data(), N, H, L.ln2_g.data(), L.ln2_b.data(), c.layer_norm_eps);
    if (want_hidden) out.hidden_states.push_back(x);
  }
  out.logits.resize(static_cast<size_t>(N * c.num_labels));
  Linear(x.data(), N, H, cls_w_.data(), cls_b_.data(), c.num_labels, out.logits.data());
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
