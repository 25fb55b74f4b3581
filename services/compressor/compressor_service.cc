#include "services/compressor/compressor_service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/obs/service_metrics.h"
#include "common/rpc/status.h"
#include "spdlog/spdlog.h"

namespace ctx::compressor {
namespace {

namespace pb = ctxstream::v1;

absl::Status Invalid(absl::string_view msg) { return absl::InvalidArgumentError(msg); }

bool InUnitInterval(double x) { return x > 0.0 && x <= 1.0; }  // false for NaN

uint32_t ClampU32(int64_t v) {
  return static_cast<uint32_t>(std::clamp<int64_t>(v, 0, std::numeric_limits<uint32_t>::max()));
}

}  // namespace

absl::StatusOr<lingua::CompressOptions> RequestToOptions(const pb::CompressRequest& req) {
  if (req.contexts_size() == 0) {
    return Invalid("contexts is empty: pass at least one non-empty context to compress");
  }
  for (int i = 0; i < req.contexts_size(); ++i) {
    if (req.contexts(i).empty()) {
      return Invalid(absl::StrCat("contexts[", i, "] is empty: remove it or give it text"));
    }
  }
  lingua::CompressOptions o;
  if (req.rate() != 0.0f) {
    if (!InUnitInterval(req.rate())) {
      return Invalid(absl::StrCat("rate ", req.rate(),
                                  " is outside (0, 1]: it is the fraction of tokens to keep "
                                  "(e.g. 0.5; 0 means the default 0.5)"));
    }
    o.rate = req.rate();
  }
  o.target_token = req.target_token() > 0 ? req.target_token() : -1;
  o.force_tokens.assign(req.force_tokens().begin(), req.force_tokens().end());
  o.force_reserve_digit = req.force_reserve_digit();
  o.drop_consecutive = req.drop_consecutive();
  o.use_context_level_filter = req.use_context_level_filter();
  if (req.token_to_word().empty() || req.token_to_word() == "mean") {
    o.token_to_word = lingua::TokenToWord::kMean;
  } else if (req.token_to_word() == "first") {
    o.token_to_word = lingua::TokenToWord::kFirst;
  } else {
    return Invalid(absl::StrCat("token_to_word \"", req.token_to_word(),
                                "\" is not supported: use \"mean\" (default) or \"first\""));
  }
  o.return_word_label = req.return_word_label() || req.return_word_probs();

  if (req.context_level_rate() != 0.0f) {
    if (!InUnitInterval(req.context_level_rate())) {
      return Invalid(absl::StrCat("context_level_rate ", req.context_level_rate(),
                                  " is outside (0, 1] (0 means the default 1.0)"));
    }
    o.context_level_rate = req.context_level_rate();
  }
  if (req.context_level_target_token() < 0 || req.target_context() < 0) {
    return Invalid("context_level_target_token and target_context must be >= 0 (0 = unset)");
  }
  o.context_level_target_token =
      req.context_level_target_token() > 0 ? req.context_level_target_token() : -1;
  o.target_context = req.target_context() > 0 ? req.target_context() : -1;
  for (int id : req.force_context_ids()) {
    if (id < 0 || id >= req.contexts_size()) {
      return Invalid(absl::StrCat("force_context_ids has ", id, ": there are ", req.contexts_size(),
                                  " contexts (ids 0..", req.contexts_size() - 1, ")"));
    }
    o.force_context_ids.push_back(id);
  }
  if (req.chunk_end_tokens_size() > 0) {
    o.chunk_end_tokens.assign(req.chunk_end_tokens().begin(), req.chunk_end_tokens().end());
  }
  return o;
}

void FillResponse(const lingua::CompressResult& r, bool want_labels, pb::CompressResponse* resp) {
  resp->set_compressed_prompt(r.compressed_prompt);
  for (const std::string& s : r.compressed_prompt_list) resp->add_compressed_prompt_list(s);
  resp->set_origin_tokens(ClampU32(r.origin_tokens));
  resp->set_compressed_tokens(ClampU32(r.compressed_tokens));
  resp->set_rate(r.origin_tokens > 0 ? static_cast<float>(static_cast<double>(r.compressed_tokens) /
                                                          static_cast<double>(r.origin_tokens))
                                     : 1.0f);
  resp->set_ratio(r.ratio);
  resp->set_rate_text(r.rate);
  resp->set_num_chunks(ClampU32(r.num_chunks));
  if (want_labels) {
    resp->set_fn_labeled_original_prompt(r.fn_labeled_original_prompt);
    resp->mutable_word_labels()->Reserve(static_cast<int>(r.word_labels.size()));
    for (const lingua::WordLabel& w : r.word_labels) {
      pb::WordLabel* out = resp->add_word_labels();
      out->set_word(w.word);
      out->set_keep(w.label == 1);
      out->set_prob(static_cast<float>(w.prob));
    }
  }
}

grpc::ServerUnaryReactor* CompressorService::Compress(grpc::CallbackServerContext* ctx,
                                                      const pb::CompressRequest* req,
                                                      pb::CompressResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const uint64_t id = next_id_.fetch_add(1);
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status queued = pool_->Submit([this, id, t0, ctx, req, resp, reactor] {
    reactor->Finish(RunCompress(id, t0, ctx, *req, resp));
  });
  if (!queued.ok()) {
    spdlog::warn("compress id={} rejected: {}", id, std::string(queued.message()));
    reactor->Finish(rpc::ToGrpcStatus(queued));
  }
  return reactor;
}

grpc::Status CompressorService::RunCompress(uint64_t id, std::chrono::steady_clock::time_point t0,
                                            grpc::CallbackServerContext* ctx,
                                            const pb::CompressRequest& req,
                                            pb::CompressResponse* resp) {
  auto fail = [&](const absl::Status& s) {
    spdlog::info("compress id={} tenant={} failed: {}: {}", id, req.tenant(),
                 absl::StatusCodeToString(s.code()), std::string(s.message()));
    return rpc::ToGrpcStatus(s);
  };
  // Work queued behind others may already be unwanted.
  if (ctx->IsCancelled()) return fail(absl::CancelledError("the client cancelled the request"));
  if (std::chrono::system_clock::now() >= ctx->deadline()) {
    return fail(absl::DeadlineExceededError(
        "deadline exceeded while queued behind other requests; raise the client deadline"));
  }
  absl::StatusOr<lingua::CompressOptions> options = RequestToOptions(req);
  if (!options.ok()) return fail(options.status());

  CallControl control;
  control.cancelled = [ctx] { return ctx->IsCancelled(); };
  control.deadline = ctx->deadline();
  RequestScorer scorer(batcher_, std::move(control));
  const std::vector<std::string> contexts(req.contexts().begin(), req.contexts().end());
  absl::StatusOr<lingua::CompressResult> result =
      engine_->Compress(contexts, *options, req.reference_compat(), &scorer);
  if (!result.ok()) return fail(result.status());

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  FillResponse(*result, req.return_word_label() || req.return_word_probs(), resp);
  resp->set_compress_seconds(seconds);
  obs::CompressorMetrics::Get().ObserveCompression(result->origin_tokens, result->compressed_tokens,
                                                   seconds);
  spdlog::info(
      "compress id={} tenant={} contexts={} chunks={} tokens_in={} tokens_out={} "
      "ratio={} seconds={:.3f}",
      id, req.tenant(), req.contexts_size(), result->num_chunks, result->origin_tokens,
      result->compressed_tokens, result->ratio, seconds);
  return grpc::Status::OK;
}

}  // namespace ctx::compressor
