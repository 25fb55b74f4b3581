// IngestCancellation: how the kvcache service stops an Ingest whose client went away (or
// whose deadline passed). Cancel() marks the ingest, which stops at its next chunk, and
// cancels the outbound Prefill call in flight, so inference stops computing KV that nobody
// will store. Thread-safe: Cancel() comes from a gRPC thread, the rest from the ingest worker.
#pragma once

#include <mutex>

#include "grpcpp/client_context.h"

namespace ctx::kvcache {

class IngestCancellation {
 public:
  void Cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (prefill_ != nullptr) prefill_->TryCancel();
  }
  bool cancelled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }
  // While attached, Cancel() also cancels `prefill` (cancelled at once if already marked).
  void Attach(grpc::ClientContext* prefill) {
    std::lock_guard<std::mutex> lock(mu_);
    prefill_ = prefill;
    if (cancelled_) prefill_->TryCancel();
  }
  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    prefill_ = nullptr;
  }

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  grpc::ClientContext* prefill_ = nullptr;
};

}  // namespace ctx::kvcache
