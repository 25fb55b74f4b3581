// TEST FIXTURE, not the kvcache service: a minimal in-process KvCache server answering Fetch
// and GetManifest from chunks the test encoded with the codec, so the inference node's
// KvSource path can be tested before the real kvcache service exists.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "grpcpp/server.h"

namespace ctx::testing {

class FakeKvCache final : public ctxstream::v1::KvCache::Service {
 public:
  // Chunk `index` covering [begin, end), stored at `level` (-1: RAW).
  void AddChunk(int index, int begin, int end, int level, std::string bytes);
  // Fetch of this chunk index fails with NOT_FOUND (a lost chunk).
  void DropChunk(int index) { drop_chunk_ = index; }
  // Serves on 127.0.0.1:<ephemeral>; returns host:port.
  std::string Start();
  ~FakeKvCache() override;
  int fetch_requests() const { return fetch_requests_; }

  grpc::Status Fetch(grpc::ServerContext* ctx,
                     grpc::ServerReaderWriter<ctxstream::v1::FetchResponse,
                                              ctxstream::v1::FetchRequest>* stream) override;
  grpc::Status GetManifest(grpc::ServerContext* ctx, const ctxstream::v1::GetManifestRequest* req,
                           ctxstream::v1::Manifest* resp) override;

 private:
  struct Stored {
    int begin = 0, end = 0;
    std::map<int, std::string> by_level;
  };
  std::map<int, Stored> chunks_;
  int drop_chunk_ = -1;
  std::atomic<int> fetch_requests_{0};
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace ctx::testing
