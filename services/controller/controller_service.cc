#include "services/controller/controller_service.h"

#include <deque>
#include <mutex>
#include <optional>

#include "common/rpc/status.h"

namespace ctx::controller {

namespace pb = ctxstream::v1;

namespace {

// A server-streaming reactor fed from another thread: Push() queues a message (one write in
// flight at a time), Close() finishes once the queue drains. Push returns false once the
// client is gone so the producer can stop. Deletes itself in OnDone; the producer must not
// touch it after Close().
template <class T>
class QueuedWriter final : public grpc::ServerWriteReactor<T> {
 public:
  bool Push(const T& msg) {
    std::unique_lock<std::mutex> lock(mu_);
    if (broken_) return false;
    queue_.push_back(msg);
    if (writing_) return true;
    writing_ = true;
    const T* front = &queue_.front();  // deque: stable under push_back
    lock.unlock();
    this->StartWrite(front);
    return true;
  }

  void Close(const grpc::Status& status) {
    std::unique_lock<std::mutex> lock(mu_);
    if (writing_) {
      finish_ = status;  // OnWriteDone finishes after the last write
      return;
    }
    lock.unlock();
    this->Finish(status);
  }

 private:
  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    queue_.pop_front();
    if (!ok) {
      broken_ = true;
      queue_.clear();
    }
    if (!queue_.empty()) {
      const T* front = &queue_.front();
      lock.unlock();
      this->StartWrite(front);
      return;
    }
    writing_ = false;
    if (finish_.has_value()) {
      const grpc::Status s = *finish_;
      lock.unlock();
      this->Finish(s);
    }
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = true;
  }
  void OnDone() override { delete this; }

  std::mutex mu_;
  std::deque<T> queue_;
  bool writing_ = false;
  bool broken_ = false;
  std::optional<grpc::Status> finish_;
};

QueryEngine::Clock::time_point ClientDeadline(grpc::CallbackServerContext* context) {
  return context->deadline();
}

// Answers a unary call on the callback thread: UNAUTHENTICATED without a tenant, else
// the status `answer(tenant)` returns.
template <typename Answer>
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::StatusOr<std::string>& tenant, Answer answer) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(tenant.ok() ? answer(*tenant) : rpc::ToGrpcStatus(tenant.status()));
  return reactor;
}

}  // namespace

ControllerService::ControllerService(QueryEngine* engine, ApiKeys keys, size_t workers,
                                     size_t max_queued)
    : engine_(engine), keys_(std::move(keys)), pool_(workers, max_queued) {}

absl::StatusOr<std::string> ControllerService::Tenant(grpc::CallbackServerContext* context) const {
  const auto& md = context->client_metadata();
  auto it = md.find("x-api-key");
  if (it == md.end()) return keys_.TenantFor(std::nullopt);
  return keys_.TenantFor(absl::string_view(it->second.data(), it->second.size()));
}

grpc::ServerWriteReactor<pb::RegisterProgress>* ControllerService::RegisterContext(
    grpc::CallbackServerContext* context, const pb::RegisterContextRequest* request) {
  auto* writer = new QueuedWriter<pb::RegisterProgress>();
  absl::StatusOr<std::string> tenant = Tenant(context);
  if (!tenant.ok()) {
    writer->Close(rpc::ToGrpcStatus(tenant.status()));
    return writer;
  }
  auto held = limits_.AcquireStream(*tenant, "RegisterContext");
  if (!held.ok()) {
    writer->Close(rpc::ToGrpcStatus(held.status()));
    return writer;
  }
  const auto deadline = engine_->QueryDeadline(ClientDeadline(context));
  absl::Status queued = pool_.Submit([this, writer, request, deadline, t = *tenant, slot = *held] {
    absl::Status over;  // --max_context_tokens, checked on the "tokenized" event
    grpc::Status s = engine_->Register(t, *request, deadline, [&](const pb::RegisterProgress& p) {
      over = limits_.CheckContextTokens(p.tokens());
      return over.ok() && writer->Push(p);
    });
    if (!over.ok()) s = rpc::ToGrpcStatus(over);
    slot->Release();
    writer->Close(s);
  });
  if (!queued.ok()) writer->Close(rpc::ToGrpcStatus(queued));
  return writer;
}

grpc::ServerWriteReactor<pb::QueryEvent>* ControllerService::Query(
    grpc::CallbackServerContext* context, const pb::QueryRequest* request) {
  auto* writer = new QueuedWriter<pb::QueryEvent>();
  absl::StatusOr<std::string> tenant = Tenant(context);
  if (!tenant.ok()) {
    writer->Close(rpc::ToGrpcStatus(tenant.status()));
    return writer;
  }
  auto held = limits_.AcquireStream(*tenant, "Query");
  if (!held.ok()) {
    writer->Close(rpc::ToGrpcStatus(held.status()));
    return writer;
  }
  const auto deadline = engine_->QueryDeadline(ClientDeadline(context));
  absl::Status queued = pool_.Submit([this, writer, request, deadline, t = *tenant, slot = *held] {
    grpc::Status s = engine_->Query(t, *request, deadline,
                                    [writer](const pb::QueryEvent& e) { return writer->Push(e); });
    slot->Release();
    writer->Close(s);
  });
  if (!queued.ok()) writer->Close(rpc::ToGrpcStatus(queued));
  return writer;
}

grpc::ServerUnaryReactor* ControllerService::GetContext(grpc::CallbackServerContext* context,
                                                        const pb::GetContextRequest* request,
                                                        pb::ContextInfo* response) {
  // Registry lookups only: no outbound call, answered on the callback thread.
  return FinishUnary(context, Tenant(context), [&](const std::string& tenant) {
    return engine_->GetContext(tenant, *request, response);
  });
}

grpc::ServerUnaryReactor* ControllerService::ListContexts(grpc::CallbackServerContext* context,
                                                          const pb::ListContextsRequest* request,
                                                          pb::ListContextsResponse* response) {
  return FinishUnary(context, Tenant(context), [&](const std::string& tenant) {
    return engine_->ListContexts(tenant, *request, response);
  });
}

grpc::ServerUnaryReactor* ControllerService::DeleteContext(
    grpc::CallbackServerContext* context, const pb::ControllerDeleteContextRequest* request,
    pb::ControllerDeleteContextResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> tenant = Tenant(context);
  if (!tenant.ok()) {
    reactor->Finish(rpc::ToGrpcStatus(tenant.status()));
    return reactor;
  }
  const auto deadline = engine_->QueryDeadline(ClientDeadline(context));
  absl::Status queued = pool_.Submit([this, reactor, request, response, deadline, t = *tenant] {
    reactor->Finish(engine_->DeleteContext(t, *request, deadline, response));
  });
  if (!queued.ok()) reactor->Finish(rpc::ToGrpcStatus(queued));
  return reactor;
}

}  // namespace ctx::controller
