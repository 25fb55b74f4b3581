#include "tests/support/kvcache_calls.h"

#include <catch2/catch.hpp>
#include <chrono>

#include "common/rpc/kv_parts.h"
#include "grpcpp/client_context.h"

namespace ctx::testing {

namespace pb = ctxstream::v1;

pb::IngestRequest IngestRequestFor(const std::string& tenant, const std::string& id,
                                   const std::vector<int32_t>& tokens, std::vector<int> levels,
                                   bool baselines, uint32_t chunk_tokens) {
  pb::IngestRequest req;
  req.set_tenant(tenant);
  req.set_context_id(id);
  for (int32_t t : tokens) req.mutable_tokens()->add_ids(t);
  req.set_chunk_tokens(chunk_tokens);
  req.set_keep_baselines(baselines);
  for (int l : levels) req.add_levels(l);
  return req;
}

IngestResult Ingest(pb::KvCache::Stub& stub, const pb::IngestRequest& request) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub.Ingest(&ctx, request);
  IngestResult r;
  pb::IngestProgress p;
  while (reader->Read(&p)) r.events.push_back(p);
  r.status = reader->Finish();
  return r;
}

std::pair<grpc::Status, std::vector<std::string>> Fetch(pb::KvCache::Stub& stub,
                                                        const std::string& tenant,
                                                        const std::string& id,
                                                        const std::vector<FetchItem>& items) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub.Fetch(&ctx);
  std::vector<std::string> out;
  rpc::KvPartAssembler assembler(64 << 20);
  bool first = true;
  for (const FetchItem& it : items) {
    pb::FetchRequest req;
    if (first) {
      req.set_tenant(tenant);
      req.set_context_id(id);
      first = false;
    }
    req.set_chunk_index(it.chunk);
    req.set_encoding(it.encoding);
    req.set_level(it.level);
    if (!stream->Write(req)) break;
    pb::FetchResponse resp;
    bool got = false;
    while (stream->Read(&resp)) {
      REQUIRE(resp.part().data().size() <= rpc::kMaxKvPartBytes);
      auto c = assembler.Add(resp.part());
      REQUIRE(c.ok());
      if (c->has_value()) {
        CHECK((*c)->ref.chunk_index() == it.chunk);
        out.push_back((*c)->bytes);
        got = true;
        break;
      }
    }
    if (!got) break;
  }
  pb::FetchRequest done;
  done.set_done(true);
  stream->Write(done);
  stream->WritesDone();
  pb::FetchResponse ignored;
  while (stream->Read(&ignored)) {
  }
  return {stream->Finish(), out};
}

std::vector<FetchItem> AllItems(const pb::Manifest& m) {
  std::vector<FetchItem> items;
  for (const pb::ManifestChunk& c : m.chunks()) {
    for (const pb::ChunkEncoding& e : c.encodings()) {
      items.push_back({c.ref().chunk_index(), e.encoding(), e.level()});
    }
  }
  return items;
}

}  // namespace ctx::testing
