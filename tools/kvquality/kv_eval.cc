#include "tools/kvquality/kv_eval.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/model/generate.h"

namespace ctx::kveval {

void Score::Add(const Score& o) {
  nll += o.nll;
  kl += o.kl;
  top1_agree += o.top1_agree;
  tokens += o.tokens;
  window_ppl_sum += o.window_ppl_sum;
  windows += o.windows;
  bits += o.bits;
  elements += o.elements;
}

double Score::PooledPpl() const { return tokens ? std::exp(nll / tokens) : 0; }

namespace {

// log-softmax of one row in place.
void LogSoftmax(float* row, int n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; ++i) mx = std::max(mx, row[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(row[i] - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  for (int i = 0; i < n; ++i) row[i] -= lse;
}

}  // namespace

absl::StatusOr<Window> Window::Prepare(const model::Model& model, std::span<const int32_t> ids,
                                       int context_tokens, int chunk_tokens,
                                       const codec::ModelFingerprint& fingerprint) {
  if (context_tokens < 2 || static_cast<int>(ids.size()) <= context_tokens || chunk_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("window of ", ids.size(),
                                                   " ids cannot hold a context of ", context_tokens,
                                                   " tokens and a continuation"));
  }
  Window w;
  w.model_ = &model;
  const model::LlamaConfig& cfg = model.config();
  w.geometry_ = {cfg.num_layers, cfg.num_kv_heads, cfg.head_dim};
  w.fingerprint_ = fingerprint;
  w.ids_.assign(ids.begin(), ids.end());
  w.context_ = context_tokens;
  w.chunk_tokens_ = chunk_tokens;

  model::KvCache cache = model.NewKvCache(static_cast<int>(ids.size()));
  const int n = context_tokens - 1;
  if (absl::Status s = model.Forward(ids.subspan(0, n), cache, model::Logits::kNone, nullptr);
      !s.ok()) {
    return s;
  }
  for (int a = 0; a < n; a += chunk_tokens) {
    const int b = std::min(n, a + chunk_tokens);
    std::vector<float> chunk = ChunkFromCache(cache, w.geometry_, a, b);
    w.chunks_.push_back(std::move(chunk));
  }
  absl::StatusOr<Score> ref = w.Run(w.chunks_, 0, &w.ref_logprobs_, &w.ref_argmax_);
  if (!ref.ok()) return ref.status();
  w.reference_ = *ref;
  return w;
}

std::vector<codec::KvChunkView> Window::ChunkViews() const {
  std::vector<codec::KvChunkView> views;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    codec::KvChunkView v;
    v.geometry = geometry_;
    v.token_begin = i * chunk_tokens_;
    v.token_count =
        static_cast<uint32_t>(chunks_[i].size() / (geometry_.slots() * geometry_.channels()));
    v.fingerprint = fingerprint_;
    v.data = chunks_[i];
    v.token_ids = std::span<const int32_t>(ids_).subspan(v.token_begin, v.token_count);
    views.push_back(v);
  }
  return views;
}

absl::StatusOr<Score> Window::Evaluate(const DegradeFn& degrade) const {
  if (!degrade) return Run(chunks_, 0, nullptr, nullptr);
  std::vector<std::vector<float>> degraded;
  double bits = 0;
  const std::vector<codec::KvChunkView> views = ChunkViews();
  for (const codec::KvChunkView& v : views) {
    absl::StatusOr<Degraded> d = degrade(v);
    if (!d.ok()) return d.status();
    if (d->kv.size() != v.data.size()) {
      return absl::InternalError("degraded chunk has the wrong number of values");
    }
    const size_t per_slot = v.ElementsPerSlot();
    for (int slot : d->missing_slots) {
      std::memcpy(d->kv.data() + slot * per_slot, v.data.data() + slot * per_slot,
                  sizeof(float) * per_slot);
    }
    bits += 8.0 * static_cast<double>(d->encoded_bytes);
    degraded.push_back(std::move(d->kv));
  }
  return Run(degraded, bits, nullptr, nullptr);
}

absl::StatusOr<Score> Window::Run(const std::vector<std::vector<float>>& chunks, double bits,
                                  std::vector<float>* set_ref_logprobs,
                                  std::vector<int32_t>* set_ref_argmax) const {
  const bool is_reference = set_ref_logprobs != nullptr;
  const model::Model& model = *model_;
  const int n = context_ - 1;
  const int m = static_cast<int>(ids_.size()) - context_;
  const int C = geometry_.channels();
  model::KvCache cache = model.NewKvCache(static_cast<int>(ids_.size()));
  int a = 0;
  for (const std::vector<float>& chunk : chunks) {
    const int t = static_cast<int>(chunk.size() / (geometry_.slots() * C));
    for (int l = 0; l < geometry_.layers; ++l) {
      std::memcpy(cache.keys(l) + static_cast<size_t>(a) * C,
                  chunk.data() + static_cast<size_t>(2 * l) * t * C, sizeof(float) * t * C);
      std::memcpy(cache.values(l) + static_cast<size_t>(a) * C,
                  chunk.data() + static_cast<size_t>(2 * l + 1) * t * C, sizeof(float) * t * C);
    }
    a += t;
  }
  if (a != n) return absl::InternalError("context chunks do not cover the context");
  if (absl::Status s = cache.SetLength(n); !s.ok()) return s;
  std::vector<float> logits;
  std::span<const int32_t> feed(ids_.data() + n, m);
  if (absl::Status s = model.Forward(feed, cache, model::Logits::kAll, &logits); !s.ok()) return s;
  const int V = model.config().vocab_size;
  Score score;
  score.tokens = m;
  score.windows = 1;
  score.bits = bits;
  score.elements = static_cast<double>(n) * geometry_.slots() * C;
  if (is_reference) {
    set_ref_logprobs->resize(static_cast<size_t>(m) * V);
    set_ref_argmax->resize(m);
  }
  for (int i = 0; i < m; ++i) {
    float* row = logits.data() + static_cast<size_t>(i) * V;
    LogSoftmax(row, V);
    const int32_t target = ids_[context_ + i];
    score.nll -= row[target];
    const int32_t am = static_cast<int32_t>(std::max_element(row, row + V) - row);
    if (is_reference) {
      std::memcpy(set_ref_logprobs->data() + static_cast<size_t>(i) * V, row, sizeof(float) * V);
      (*set_ref_argmax)[i] = am;
      score.top1_agree += 1;
    } else {
      const float* ref = ref_logprobs_.data() + static_cast<size_t>(i) * V;
      double kl = 0;
      for (int v = 0; v < V; ++v) kl += std::exp(static_cast<double>(ref[v])) * (ref[v] - row[v]);
      score.kl += std::max(0.0, kl);
      score.top1_agree += am == ref_argmax_[i];
    }
  }
  score.window_ppl_sum = std::exp(score.nll / m);
  return score;
}

std::vector<float> ChunkFromCache(const model::KvCache& cache, const codec::KvGeometry& g, int a,
                                  int b) {
  const int C = g.channels();
  std::vector<float> chunk(static_cast<size_t>(g.slots()) * (b - a) * C);
  for (int l = 0; l < g.layers; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      const float* src = (kv == 0 ? cache.keys(l) : cache.values(l)) + static_cast<size_t>(a) * C;
      std::memcpy(chunk.data() + static_cast<size_t>(2 * l + kv) * (b - a) * C, src,
                  sizeof(float) * (b - a) * C);
    }
  }
  return chunk;
}

absl::StatusOr<GreedyWindow> GreedyWindow::Prepare(const model::Model& model,
                                                   std::span<const int32_t> context,
                                                   int chunk_tokens,
                                                   const codec::ModelFingerprint& fingerprint) {
  if (context.size() < 2 || chunk_tokens <= 0) {
    return absl::InvalidArgumentError("greedy window needs >= 2 context tokens");
  }
  GreedyWindow w;
  w.model_ = &model;
  const model::LlamaConfig& cfg = model.config();
  w.geometry_ = {cfg.num_layers, cfg.num_kv_heads, cfg.head_dim};
  w.fingerprint_ = fingerprint;
  w.context_.assign(context.begin(), context.end());
  w.chunk_tokens_ = chunk_tokens;
  const int n = static_cast<int>(context.size());
  model::KvCache cache = model.NewKvCache(n);
  for (int a = 0; a < n; a += chunk_tokens) {
    const int b = std::min(n, a + chunk_tokens);
    if (absl::Status s =
            model.Forward(context.subspan(a, b - a), cache, model::Logits::kNone, nullptr);
        !s.ok()) {
      return s;
    }
    w.chunks_.push_back(ChunkFromCache(cache, w.geometry_, a, b));
  }
  return w;
}

absl::StatusOr<model::KvCache> GreedyWindow::Fill(const DegradeFn& degrade, int capacity) const {
  const model::Model& model = *model_;
  const int n = static_cast<int>(context_.size());
  const int C = geometry_.channels();
  model::KvCache cache = model.NewKvCache(capacity);
  int a = 0;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const int t = static_cast<int>(chunks_[i].size() / (geometry_.slots() * C));
    std::vector<float> kv = chunks_[i];
    if (degrade) {
      codec::KvChunkView v;
      v.geometry = geometry_;
      v.token_begin = static_cast<uint64_t>(a);
      v.token_count = static_cast<uint32_t>(t);
      v.fingerprint = fingerprint_;
      v.data = chunks_[i];
      v.token_ids = std::span<const int32_t>(context_).subspan(v.token_begin, v.token_count);
      absl::StatusOr<Degraded> d = degrade(v);
      if (!d.ok()) return d.status();
      if (d->kv.size() != kv.size()) {
        return absl::InternalError("degraded chunk has the wrong number of values");
      }
      const size_t per_slot = v.ElementsPerSlot();
      for (int slot : d->missing_slots) {
        std::memcpy(d->kv.data() + slot * per_slot, kv.data() + slot * per_slot,
                    sizeof(float) * per_slot);
      }
      kv = std::move(d->kv);
    }
    for (int l = 0; l < geometry_.layers; ++l) {
      std::memcpy(cache.keys(l) + static_cast<size_t>(a) * C,
                  kv.data() + static_cast<size_t>(2 * l) * t * C, sizeof(float) * t * C);
      std::memcpy(cache.values(l) + static_cast<size_t>(a) * C,
                  kv.data() + static_cast<size_t>(2 * l + 1) * t * C, sizeof(float) * t * C);
    }
    a += t;
  }
  if (absl::Status s = cache.SetLength(n); !s.ok()) return s;
  return cache;
}

absl::StatusOr<std::vector<int32_t>> GreedyWindow::Generate(const DegradeFn& degrade,
                                                            int max_new) const {
  absl::StatusOr<model::KvCache> cache =
      Fill(degrade, static_cast<int>(context_.size()) + max_new + 1);
  if (!cache.ok()) return cache.status();
  model::GenerateOptions opts;
  opts.max_new_tokens = max_new;
  opts.stop_at_eos = false;
  absl::StatusOr<model::GenerateResult> r = model::Generate(*model_, context_, *cache, opts);
  if (!r.ok()) return r.status();
  return std::move(r->tokens);
}

absl::StatusOr<std::vector<int32_t>> GreedyWindow::Resynced(
    const DegradeFn& degrade, std::span<const int32_t> reference) const {
  const int n = static_cast<int>(context_.size());
  const int m = static_cast<int>(reference.size());
  absl::StatusOr<model::KvCache> cache = Fill(degrade, n + m + 1);
  if (!cache.ok()) return cache.status();
  // As model::Generate does: the last context token is recomputed, then the reference's tokens
  // are fed; logits row i predicts position i of the answer.
  if (absl::Status s = cache->Truncate(n - 1); !s.ok()) return s;
  std::vector<int32_t> feed = {context_.back()};
  feed.insert(feed.end(), reference.begin(), reference.end() - (m > 0 ? 1 : 0));
  std::vector<float> logits;
  if (absl::Status s = model_->Forward(feed, *cache, model::Logits::kAll, &logits); !s.ok()) {
    return s;
  }
  const int V = model_->config().vocab_size;
  std::vector<int32_t> out(m);
  for (int i = 0; i < m; ++i) {
    const float* row = logits.data() + static_cast<size_t>(i) * V;
    out[i] = static_cast<int32_t>(std::max_element(row, row + V) - row);
  }
  return out;
}

Agreement CompareTokens(std::span<const int32_t> reference, std::span<const int32_t> other) {
  Agreement g;
  g.total = static_cast<int64_t>(reference.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    const bool same = i < other.size() && reference[i] == other[i];
    g.equal += same;
    if (!same && g.first_divergence < 0) g.first_divergence = static_cast<int>(i);
  }
  return g;
}

std::vector<std::string> SplitDocuments(const std::string& text) {
  std::vector<std::string> docs;
  size_t start = 0;
  for (;;) {
    const size_t p = text.find("\f\n", start);
    docs.push_back(text.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 2;
  }
  return docs;
}

}  // namespace ctx::kveval
