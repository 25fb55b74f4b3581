#include "common/model/model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/tensor/gemm.h"

namespace ctx::model {

using ops::MatMul;
using ops::MatMulTransB;

namespace {

// A slice of the calling thread's work memory (every element is written before it is read).
struct Buffer {
  float* get() const { return data; }
  float* data = nullptr;
};

// One thread's work memory, reused by all its Forward calls: fresh multi-megabyte buffers
// per call cost page faults and kernel zeroing every time (a few % of a prefill). Grows to
// the largest block seen (~9 MB for tiny-llama's 512-token blocks at 2048 positions).
float* ThreadArena(size_t n) {
  thread_local std::vector<float> arena;
  if (arena.size() < n) arena.resize(n);
  return arena.data();
}

// Queries per attention block: the score matrix is [kQueryBlock * group][keys seen].
constexpr int kQueryBlock = 64;
// Up to this many (token, head) rows, attention uses matrix-vector products instead of GEMMs.
constexpr int kFewRows = 16;

// Attention's products: our kernels (tensor/gemm.h) unless the naive baseline is asked for.
void MatMulNT(const ForwardOptions& opt, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float* C, int ldc) {
  if (opt.gemm != ops::Gemm::kBlas) {
    MatMulTransB(opt.gemm, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc);
    return;
  }
  tensor::GemmEpilogue e;
  e.alpha = alpha;
  tensor::MatMulNT(M, N, K, A, lda, B, ldb, C, ldc, e);
}
void MatMulNN(const ForwardOptions& opt, int M, int N, int K, const float* A, int lda,
              const float* B, int ldb, float* C, int ldc) {
  if (opt.gemm != ops::Gemm::kBlas) {
    MatMul(opt.gemm, M, N, K, A, lda, B, ldb, C, ldc);
    return;
  }
  tensor::MatMulNN(M, N, K, A, lda, B, ldb, C, ldc);
}

}  // namespace

// Work buffers of one Forward call, sized for its largest block and reused by every block
// and layer.
struct Model::Scratch {
  Scratch(const LlamaConfig& c, int T, int max_keys) {
    const size_t t = static_cast<size_t>(T), nq = static_cast<size_t>(std::min(T, kQueryBlock));
    const size_t group_rows = nq * c.group_size();
    const size_t sizes[] = {
        t * c.hidden_size,       t * c.hidden_size,       t * c.q_dim(),
        t * c.q_dim(),           t * c.intermediate_size, t * c.intermediate_size,
        group_rows * c.head_dim, group_rows * c.head_dim, group_rows * max_keys};
    Buffer* buffers[] = {&x, &xn, &q, &att, &gate, &up, &q_group, &out_group, &scores};
    size_t total = 0;
    for (size_t n : sizes) total += (n + 15) / 16 * 16;  // slices rounded to 16 floats
    float* p = ThreadArena(total);
    for (size_t i = 0; i < std::size(sizes); ++i) {
      buffers[i]->data = p;
      p += (sizes[i] + 15) / 16 * 16;
    }
  }
  Buffer x;          // [T][H] residual stream
  Buffer xn;         // [T][H] normalized input of a sublayer
  Buffer q;          // [T][q_dim] queries
  Buffer att;        // [T][q_dim] attention output
  Buffer gate;       // [T][I]
  Buffer up;         // [T][I]
  Buffer q_group;    // [nq * group][D] the queries of one KV group, one row per (token, head)
  Buffer out_group;  // [nq * group][D]
  Buffer scores;     // [nq * group][keys]
};

Model::Model(std::string dir, LlamaConfig config, LlamaWeights weights, ModelFingerprint fp)
    : dir_(std::move(dir)),
      config_(config),
      weights_(std::move(weights)),
      fingerprint_(fp),
      rope_(config.max_position_embeddings, config.head_dim, config.rope_theta) {}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& model_dir) {
  absl::StatusOr<LlamaConfig> config = LoadLlamaConfig(model_dir);
  if (!config.ok()) return config.status();
  absl::StatusOr<tensor::CheckpointWeights> ckpt = tensor::CheckpointWeights::Open(model_dir);
  if (!ckpt.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open weights of ", model_dir, ": ", ckpt.status().message()));
  }
  absl::StatusOr<LlamaWeights> weights = LoadLlamaWeights(*ckpt, *config);
  if (!weights.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(model_dir, ": ", weights.status().message()));
  }
  const ModelFingerprint fp = ComputeFingerprint(*config, *ckpt);
  return std::unique_ptr<Model>(new Model(model_dir, *config, std::move(*weights), fp));
}

KvCache Model::NewKvCache(int capacity) const {
  if (capacity <= 0 || capacity > config_.max_position_embeddings) {
    capacity = config_.max_position_embeddings;
  }
  return KvCache(config_.num_layers, config_.kv_dim(), capacity);
}

absl::Status Model::CheckTokens(std::span<const int32_t> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", tokens[i], " at index ", i,
                                                     " is outside the vocabulary [0, ",
                                                     config_.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Model::Forward(std::span<const int32_t> tokens, KvCache& cache, Logits which,
                            std::vector<float>* logits, const ForwardOptions& options) const {
  const int n = static_cast<int>(tokens.size());
  if (n == 0) return absl::InvalidArgumentError("forward pass needs at least one token");
  if (absl::Status s = CheckTokens(tokens); !s.ok()) return s;
  if (cache.num_layers() != config_.num_layers || cache.kv_dim() != config_.kv_dim()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV cache geometry (", cache.num_layers(), " layers x ", cache.kv_dim(),
        ") does not match the model (", config_.num_layers, " x ", config_.kv_dim(), ")"));
  }
  const int pos0 = cache.length();
  const int limit = std::min(cache.capacity(), config_.max_position_embeddings);
  if (static_cast<int64_t>(pos0) + n > limit) {
    return absl::InvalidArgumentError(absl::StrCat("context of ", pos0 + int64_t{n},
                                                   " tokens exceeds the limit of ", limit,
                                                   " (max_position_embeddings / cache capacity)"));
  }
  if (which != Logits::kNone && logits == nullptr) {
    return absl::InvalidArgumentError("logits requested but no output vector given");
  }
  const size_t V = config_.vocab_size;
  if (which == Logits::kAll) logits->assign(static_cast<size_t>(n) * V, 0.0f);
  if (which == Logits::kLast) logits->assign(V, 0.0f);

  const int block = std::max(1, options.block_tokens);
  Scratch scratch(config_, std::min(block, n), pos0 + n);
  for (int b0 = 0; b0 < n; b0 += block) {
    const int T = std::min(block, n - b0);
    const bool last_block = b0 + T == n;
    int first_logit_row = T;  // none
    float* out = nullptr;
    if (which == Logits::kAll) {
      first_logit_row = 0;
      out = logits->data() + static_cast<size_t>(b0) * V;
    } else if (which == Logits::kLast && last_block) {
      first_logit_row = T - 1;
      out = logits->data();
    }
    ForwardBlock(tokens.subspan(b0, T), pos0 + b0, cache, first_logit_row, out, scratch, options);
    (void)cache.SetLength(pos0 + b0 + T);  // within capacity: checked above
  }
  return absl::OkStatus();
}

namespace {

// A Linear layer on T rows: C[T][N] (+)= A[T][K] . W[N][K]^T. A single row (decode) reads the
// bfloat16 copy of W when there is one; blocks of rows use the packed copy (tensor/gemm.h).
void Linear(const ForwardOptions& opt, int T, int N, int K, const float* A, const float* W,
            const tensor::PackedMatrix& packed, const std::vector<uint16_t>* w_bf16, float beta,
            float* C) {
  if (T == 1 && w_bf16 != nullptr && !w_bf16->empty() && opt.gemm == ops::Gemm::kBlas &&
      opt.bf16_decode) {
    ops::GemvBF16(N, K, w_bf16->data(), A, beta, C);
    return;
  }
  if (opt.gemm == ops::Gemm::kBlas) {
    tensor::GemmEpilogue e;
    e.beta = beta;
    tensor::MatMulPacked(T, A, K, packed, C, N, e);
    return;
  }
  MatMulTransB(opt.gemm, T, N, K, 1.0f, A, K, W, K, beta, C, N);
}

}  // namespace

void Model::ForwardBlock(std::span<const int32_t> tokens, int pos0, KvCache& cache,
                         int first_logit_row, float* logits, Scratch& scratch,
                         const ForwardOptions& opt) const {
  const LlamaConfig& c = config_;
  const int T = static_cast<int>(tokens.size());
  const int H = c.hidden_size, I = c.intermediate_size, QD = c.q_dim(), KVD = c.kv_dim();

  float* x = scratch.x.get();        // [T][H] residual stream
  float* xn = scratch.xn.get();      // [T][H] normalized input of a sublayer
  float* q = scratch.q.get();        // [T][q_dim] queries
  float* att = scratch.att.get();    // [T][q_dim] attention output
  float* gate = scratch.gate.get();  // [T][I]
  float* up = scratch.up.get();      // [T][I]

  // Embedding: x[t] = embed[token t]                                     [T][H]
  for (int t = 0; t < T; ++t) {
    std::copy_n(weights_.embed.data() + static_cast<size_t>(tokens[t]) * H, H,
                x + static_cast<size_t>(t) * H);
  }

  for (int l = 0; l < c.num_layers; ++l) {
    const LlamaLayerWeights& w = weights_.layers[l];
    const LlamaLayerWeightsBF16* b = weights_.has_bf16() ? &weights_.layers_bf16[l] : nullptr;
    const LlamaLayerWeightsPacked& p = weights_.layers_packed[l];
    float* k_rows = cache.keys(l) + static_cast<size_t>(pos0) * KVD;    // [T][kv_dim]
    float* v_rows = cache.values(l) + static_cast<size_t>(pos0) * KVD;  // [T][kv_dim]

    // Attention sublayer: x += o_proj(attn(rope(q), rope(k), v)) of rmsnorm(x).
    ops::RmsNorm(x, w.input_norm.data(), T, H, c.rms_norm_eps, xn);
    Linear(opt, T, QD, H, xn, w.wq.data(), p.wq, b ? &b->wq : nullptr, 0.0f, q);
    Linear(opt, T, KVD, H, xn, w.wk.data(), p.wk, b ? &b->wk : nullptr, 0.0f, k_rows);
    Linear(opt, T, KVD, H, xn, w.wv.data(), p.wv, b ? &b->wv : nullptr, 0.0f, v_rows);
    ops::ApplyRope(rope_, q, T, QD, c.num_heads, c.head_dim, pos0);
    ops::ApplyRope(rope_, k_rows, T, KVD, c.num_kv_heads, c.head_dim, pos0);
    Attention(q, T, pos0, cache, l, att, scratch, opt);
    Linear(opt, T, H, QD, att, w.wo.data(), p.wo, b ? &b->wo : nullptr, 1.0f, x);

    // MLP sublayer: x += down(silu(gate(xn)) * up(xn)), xn = rmsnorm(x).
    ops::RmsNorm(x, w.post_norm.data(), T, H, c.rms_norm_eps, xn);
    Linear(opt, T, I, H, xn, w.w_gate.data(), p.w_gate, b ? &b->w_gate : nullptr, 0.0f, gate);
    Linear(opt, T, I, H, xn, w.w_up.data(), p.w_up, b ? &b->w_up : nullptr, 0.0f, up);
    ops::SwiGlu(gate, up, static_cast<size_t>(T) * I);
    Linear(opt, T, H, I, gate, w.w_down.data(), p.w_down, b ? &b->w_down : nullptr, 1.0f, x);
  }

  // Final norm and lm_head, only for the rows whose logits are wanted.   [rows][V]
  const int rows = T - first_logit_row;
  if (rows <= 0 || logits == nullptr) return;
  const float* x_rows = x + static_cast<size_t>(first_logit_row) * H;
  ops::RmsNorm(x_rows, weights_.final_norm.data(), rows, H, c.rms_norm_eps, xn);
  Linear(opt, rows, c.vocab_size, H, xn, weights_.lm_head_data(), weights_.lm_head_packed,
         weights_.has_bf16() ? &weights_.lm_head_bf16 : nullptr, 0.0f, logits);
}

void Model::Attention(const float* q, int T, int pos0, const KvCache& cache, int layer, float* out,
                      Scratch& scratch, const ForwardOptions& opt) const {
  const LlamaConfig& c = config_;
  const int D = c.head_dim, QD = c.q_dim(), KVD = c.kv_dim(), group = c.group_size();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float* keys = cache.keys(layer);      // [pos0 + T][kv_dim], rows after RoPE
  const float* values = cache.values(layer);  // [pos0 + T][kv_dim]
  float* q_group = scratch.q_group.get();
  float* out_group = scratch.out_group.get();
  float* scores = scratch.scores.get();

  // Queries go in blocks of kQueryBlock tokens so the score matrix is [block][keys seen],
  // never [T][T]; a block only looks at keys up to its last query (causal), so the work
  // above the diagonal is skipped except inside the block itself. The `group` query heads
  // sharing KV head g are stacked into one matrix so K_g and V_g are read once per block.
  // Keys of each KV group packed once for all query blocks (a block reads a prefix of them).
  std::vector<tensor::PackedMatrix> packed_keys;
  const bool use_packed = T > kFewRows / group && opt.gemm == ops::Gemm::kBlas;
  if (use_packed) {
    for (int g = 0; g < c.num_kv_heads; ++g) {
      packed_keys.emplace_back(keys + static_cast<size_t>(g) * D, pos0 + T, D, KVD);
    }
  }
  for (int qb = 0; qb < T; qb += kQueryBlock) {
    const int nq = std::min(kQueryBlock, T - qb);
    const int nk = pos0 + qb + nq;  // keys visible to the block's last query
    const int rows = nq * group;    // row t * group + j = token qb + t, head g * group + j
    for (int g = 0; g < c.num_kv_heads; ++g) {
      // q_group[rows][D] <- q[qb + t][(g * group + j) * D ..]; the heads of a group are
      // adjacent in a q row, so each token contributes one contiguous run of group * D.
      for (int t = 0; t < nq; ++t) {
        std::copy_n(q + static_cast<size_t>(qb + t) * QD + static_cast<size_t>(g) * group * D,
                    group * D, q_group + static_cast<size_t>(t) * group * D);
      }
      // scores[rows][nk] = q_group . K_g^T / sqrt(D). A few rows (decode) use one gemv per
      // row (measured 1.4x faster than a gemm with M = 3, which packs all keys first);
      // blocks of queries use a GEMM.
      const float* k_g = keys + static_cast<size_t>(g) * D;
      const float* v_g = values + static_cast<size_t>(g) * D;
      const bool few_rows = rows <= kFewRows && opt.gemm == ops::Gemm::kBlas;
      if (few_rows) {
        for (int r = 0; r < rows; ++r) {  // one matrix-vector product per (token, head) row
          MatMulTransB(opt.gemm, 1, nk, D, scale, q_group + static_cast<size_t>(r) * D, D, k_g, KVD,
                       0.0f, scores + static_cast<size_t>(r) * nk, nk);
        }
      } else {
        if (use_packed) {
          tensor::GemmEpilogue e;
          e.alpha = scale;
          tensor::MatMulPackedPrefix(rows, nk, q_group, D, packed_keys[g], scores, nk, e);
        } else {
          MatMulNT(opt, rows, nk, D, scale, q_group, D, k_g, KVD, scores, nk);
        }
      }
      // Token qb + t sits at position pos0 + qb + t and sees keys [0, pos0 + qb + t].
      for (int r = 0; r < rows; ++r) {
        ops::SoftmaxPrefix(scores + static_cast<size_t>(r) * nk, pos0 + qb + r / group + 1, nk);
      }
      // out_group[rows][D] = scores . V_g, then back to out[qb + t][(g * group + j) * D ..]
      if (few_rows) {
        for (int r = 0; r < rows; ++r) {
          MatMul(opt.gemm, 1, D, nk, scores + static_cast<size_t>(r) * nk, nk, v_g, KVD,
                 out_group + static_cast<size_t>(r) * D, D);
        }
      } else {
        MatMulNN(opt, rows, D, nk, scores, nk, v_g, KVD, out_group, D);
      }
      for (int t = 0; t < nq; ++t) {
        std::copy_n(out_group + static_cast<size_t>(t) * group * D, group * D,
                    out + static_cast<size_t>(qb + t) * QD + static_cast<size_t>(g) * group * D);
      }
    }
  }
}

}  // namespace ctx::model
