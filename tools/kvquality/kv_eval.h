// Quality of a degraded context KV, measured the way kv-anchors.md §3 does (shared by the
// calibrate and kvquality tools):
//
//   window ids w[0 : n + m]   (n context tokens, m scored tokens; protocol: n = 1024, m = 256)
//   1. full-precision prefill of w[0 : n-1]  -> context KV (n-1 tokens, cut in chunks)
//   2. per variant: each context chunk goes through `degrade` (encode + decode), then
//      w[n-1 : n+m-1] is fed on top (the last context token is recomputed, as serving
//      engines do) and the m logits score w[n : n+m] by teacher forcing.
//   The reference is the same step 2 with the untouched KV, so both runs share one path.
//
// Slots a codec level does not send (layer 0 at "-r0" levels) are recomputed by the receiver
// from the token ids; here they are restored from the full-precision KV, which is identical.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/codec/kv_chunk.h"
#include "common/model/model.h"

namespace ctx::kveval {

// Per-variant totals over scored tokens (sums, so windows can be pooled).
struct Score {
  double nll = 0;          // sum of -log p(target)
  double kl = 0;           // sum of KL(full || degraded), nats
  int64_t top1_agree = 0;  // argmax equal to the full-KV run's argmax
  int64_t tokens = 0;
  double window_ppl_sum = 0;  // sum over windows of exp(mean NLL of the window)
  int64_t windows = 0;
  double bits = 0;  // encoded bits of the context chunks (all-in)
  double elements = 0;

  void Add(const Score& o);
  double MeanKl() const { return tokens ? kl / tokens : 0; }
  double Top1() const { return tokens ? static_cast<double>(top1_agree) / tokens : 0; }
  double PooledPpl() const;
  double MeanWindowPpl() const { return windows ? window_ppl_sum / windows : 0; }
  double BitsPerElement() const { return elements > 0 ? bits / elements : 0; }
};

// Degrades one chunk: returns the decoded KV (same layout/size as chunk.data; slots listed in
// `missing_slots` are restored from the original) and the encoded size in bytes.
struct Degraded {
  std::vector<float> kv;
  std::vector<int> missing_slots;
  size_t encoded_bytes = 0;
};
using DegradeFn = std::function<absl::StatusOr<Degraded>(const codec::KvChunkView& chunk)>;

// The full-precision run of one window.
class Window {
 public:
  // ids.size() must be context_tokens + scored_tokens (context_tokens >= 2).
  static absl::StatusOr<Window> Prepare(const model::Model& model, std::span<const int32_t> ids,
                                        int context_tokens, int chunk_tokens,
                                        const codec::ModelFingerprint& fingerprint);

  // Chunks of the context KV (n-1 tokens), for profiling.
  const std::vector<std::vector<float>>& chunks() const { return chunks_; }
  std::vector<codec::KvChunkView> ChunkViews() const;

  // Scores a variant (nullptr degrade = the untouched KV).
  absl::StatusOr<Score> Evaluate(const DegradeFn& degrade) const;
  const Score& reference() const { return reference_; }

 private:
  // Feeds the continuation on top of `chunks`. With `set_reference` the run's log-probs and
  // argmax become the reference the later runs are compared with.
  absl::StatusOr<Score> Run(const std::vector<std::vector<float>>& chunks, double bits,
                            std::vector<float>* set_ref_logprobs,
                            std::vector<int32_t>* set_ref_argmax) const;

  const model::Model* model_ = nullptr;
  codec::KvGeometry geometry_;
  codec::ModelFingerprint fingerprint_{};
  std::vector<int32_t> ids_;
  int context_ = 0;
  int chunk_tokens_ = 0;
  std::vector<std::vector<float>> chunks_;  // [chunk][layers][K|V][T][C]
  std::vector<float> ref_logprobs_;         // [m][V] of the reference run
  std::vector<int32_t> ref_argmax_;         // [m]
  Score reference_;
};

// Free-running greedy decoding on top of a context delivered as KV: the receiver's side of the
// KV path (inference Generate from stored chunks). The context KV is prefilled in blocks of
// `chunk_tokens` (as inference Prefill and the text path do), each block is one chunk; a
// variant passes every chunk through `degrade` into a cache covering the whole context, then
// model::Generate recomputes the last context token and decodes `max_new` tokens greedily
// (EOS does not stop, so every run has the same length). The reference is the exact KV.
class GreedyWindow {
 public:
  static absl::StatusOr<GreedyWindow> Prepare(const model::Model& model,
                                              std::span<const int32_t> context, int chunk_tokens,
                                              const codec::ModelFingerprint& fingerprint);
  // Greedy tokens after the (degraded) context; nullptr degrade = the untouched KV.
  absl::StatusOr<std::vector<int32_t>> Generate(const DegradeFn& degrade, int max_new) const;
  // Greedy choice of the (degraded) KV path at every position of `reference` (the exact run's
  // greedy tokens) given the reference's own prefix: out[i] = argmax p(. | context,
  // reference[0:i]). A divergence then costs one position, not the rest of the answer.
  absl::StatusOr<std::vector<int32_t>> Resynced(const DegradeFn& degrade,
                                                std::span<const int32_t> reference) const;

 private:
  // A cache holding the context's KV, every chunk passed through `degrade`.
  absl::StatusOr<model::KvCache> Fill(const DegradeFn& degrade, int capacity) const;

  const model::Model* model_ = nullptr;
  codec::KvGeometry geometry_;
  codec::ModelFingerprint fingerprint_{};
  std::vector<int32_t> context_;
  int chunk_tokens_ = 0;
  std::vector<std::vector<float>> chunks_;  // [chunk][layers][K|V][T][C]
};

// Positions i < min(a.size(), b.size()) where a[i] == b[i] (greedy agreement counts every
// position of the generated length, also after a divergence), and the first differing one.
struct Agreement {
  int64_t equal = 0;
  int64_t total = 0;
  int first_divergence = -1;  // -1: identical
};
Agreement CompareTokens(std::span<const int32_t> reference, std::span<const int32_t> other);

// Tokens [a, b) of a KV cache as one codec chunk: [layers][K|V][b-a][C] float32.
std::vector<float> ChunkFromCache(const model::KvCache& cache, const codec::KvGeometry& geometry,
                                  int a, int b);

// [BOS] + ids of each document of a corpus file whose documents are separated by "\f\n".
std::vector<std::string> SplitDocuments(const std::string& text);

}  // namespace ctx::kveval
