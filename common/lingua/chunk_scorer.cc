#include "common/lingua/chunk_scorer.h"

#include <algorithm>
#include <numeric>

namespace ctx::lingua {

absl::StatusOr<std::vector<std::vector<float>>> ClassifierScorer::KeepProbs(
    std::span<const std::vector<int32_t>> seqs) const {
  // Longest first, so each batch pads to similar lengths.
  std::vector<size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return seqs[a].size() > seqs[b].size(); });
  std::vector<std::vector<float>> out(seqs.size());
  for (size_t s = 0; s < order.size(); s += static_cast<size_t>(max_batch_)) {
    const size_t e = std::min(order.size(), s + static_cast<size_t>(max_batch_));
    std::vector<std::vector<int32_t>> group;
    for (size_t k = s; k < e; ++k) group.push_back(seqs[order[k]]);
    auto probs = clf_->KeepProbs(group);
    if (!probs.ok()) return probs.status();
    for (size_t k = s; k < e; ++k) out[order[k]] = std::move((*probs)[k - s]);
  }
  return out;
}

}  // namespace ctx::lingua
