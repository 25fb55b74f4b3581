// Where p(keep) for a batch of classifier inputs comes from. The compressor hands over all
// chunks of one request at once; an implementation may run them directly (ClassifierScorer)
// or merge them with chunks of concurrent requests into one padded forward batch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/lingua/xlmr_classifier.h"

namespace ctx::lingua {

class ChunkScorer {
 public:
  virtual ~ChunkScorer() = default;
  // For each id sequence (<= 512 ids, specials included), p(keep) at every position.
  virtual absl::StatusOr<std::vector<std::vector<float>>> KeepProbs(
      std::span<const std::vector<int32_t>> seqs) const = 0;
};

// Runs the classifier in padded batches of at most `max_batch` sequences (reference: 50).
// Sequences are grouped by length so that little padding is computed.
class ClassifierScorer : public ChunkScorer {
 public:
  explicit ClassifierScorer(const XlmrClassifier* clf, int max_batch = 50)
      : clf_(clf), max_batch_(max_batch < 1 ? 1 : max_batch) {}
  absl::StatusOr<std::vector<std::vector<float>>> KeepProbs(
      std::span<const std::vector<int32_t>> seqs) const override;

 private:
  const XlmrClassifier* clf_;
  int max_batch_;
};

}  // namespace ctx::lingua
