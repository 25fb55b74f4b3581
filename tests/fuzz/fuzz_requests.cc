// libFuzzer target: the request side of the service handlers. Input: one selector byte,
// then a serialized request.
//   0: ctxstream.v1.CompressRequest -> compressor's RequestToOptions (its whole validation)
//   1: a stream of ctxstream.v1.GenerateRequest (u16 length-prefixed): `kv` messages go
//      through KvPartAssembler as the inference handler does; start/replan are parsed only
//   2: ctxstream.v1.FetchRequest: parsed only
// The inference and kvcache handlers have no validation functions factored out on main
// yet, so for them this covers message parsing and KV part assembly only.
#include <cstddef>
#include <cstdint>

#include "common/rpc/kv_parts.h"
#include "ctxstream/v1/compressor.pb.h"
#include "ctxstream/v1/inference.pb.h"
#include "ctxstream/v1/kvcache.pb.h"
#include "services/compressor/compressor_service.h"

namespace {

void Compress(const uint8_t* data, size_t size) {
  ctxstream::v1::CompressRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<ctx::lingua::CompressOptions> o = ctx::compressor::RequestToOptions(req);
  if (o.ok() && req.contexts_size() == 0) __builtin_trap();  // documented as rejected
}

void Generate(const uint8_t* data, size_t size) {
  ctx::rpc::KvPartAssembler assembler(1 << 16);
  size_t pos = 0;
  while (pos + 2 <= size) {
    const size_t len = data[pos] | (size_t{data[pos + 1]} << 8);
    pos += 2;
    if (len > size - pos) break;
    ctxstream::v1::GenerateRequest req;
    const bool parsed = req.ParseFromArray(data + pos, static_cast<int>(len));
    pos += len;
    if (!parsed) return;  // gRPC ends the stream on a message that does not parse
    if (req.has_kv()) {
      if (!assembler.Add(req.kv()).ok()) return;  // the handler fails the call here
    } else if (req.has_start()) {
      uint64_t tokens = 0;
      for (const auto& seg : req.start().segments()) tokens += seg.tokens().ids_size();
      (void)tokens;
    }
  }
}

void Fetch(const uint8_t* data, size_t size) {
  ctxstream::v1::FetchRequest req;
  (void)req.ParseFromArray(data, static_cast<int>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  switch (data[0] % 3) {
    case 0:
      Compress(data + 1, size - 1);
      break;
    case 1:
      Generate(data + 1, size - 1);
      break;
    default:
      Fetch(data + 1, size - 1);
      break;
  }
  return 0;
}
