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

// [BOS] + ids of each document of a corpus file whose documents are separated by "\f\n".
std::vector<std::string> SplitDocuments(const std::string& text);

}  // namespace ctx::kveval
