// kvcache client calls for tests: Ingest a token sequence and Fetch chunks over one bidi
// stream, with the checks every caller wants (part sizes, chunk order) as Catch assertions.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "grpcpp/support/status.h"

namespace ctx::testing {

struct IngestResult {
  grpc::Status status;
  std::vector<ctxstream::v1::IngestProgress> events;
};

ctxstream::v1::IngestRequest IngestRequestFor(const std::string& tenant, const std::string& id,
                                              const std::vector<int32_t>& tokens,
                                              std::vector<int> levels, bool baselines,
                                              uint32_t chunk_tokens = 256);
// Runs Ingest to the end (deadline 120 s): every progress event and the final status.
IngestResult Ingest(ctxstream::v1::KvCache::Stub& stub,
                    const ctxstream::v1::IngestRequest& request);

struct FetchItem {
  uint32_t chunk;
  ctxstream::v1::KvEncoding encoding;
  int32_t level;
};
// Fetches `items` over one stream (deadline 60 s): the bytes of each chunk served, and the
// stream's status. Every part is at most rpc::kMaxKvPartBytes and chunks come in order.
std::pair<grpc::Status, std::vector<std::string>> Fetch(ctxstream::v1::KvCache::Stub& stub,
                                                        const std::string& tenant,
                                                        const std::string& id,
                                                        const std::vector<FetchItem>& items);
// Every (chunk, encoding, level) a manifest lists.
std::vector<FetchItem> AllItems(const ctxstream::v1::Manifest& m);

}  // namespace ctx::testing
