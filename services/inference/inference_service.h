// The inference service's gRPC handlers (callback API). Methods not yet implemented answer
// UNIMPLEMENTED (the generated base class's default); see README.md in this folder.
#pragma once

#include "ctxstream/v1/inference.grpc.pb.h"

namespace ctx::inference {

class InferenceService final : public ctxstream::v1::Inference::CallbackService {};

}  // namespace ctx::inference
