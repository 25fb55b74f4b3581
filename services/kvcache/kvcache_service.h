// The kvcache service's gRPC handlers (callback API). Methods not yet implemented answer
// UNIMPLEMENTED (the generated base class's default); see README.md in this folder.
#pragma once

#include "ctxstream/v1/kvcache.grpc.pb.h"

namespace ctx::kvcache {

class KvCacheService final : public ctxstream::v1::KvCache::CallbackService {};

}  // namespace ctx::kvcache
