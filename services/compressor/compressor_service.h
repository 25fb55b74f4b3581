// The compressor service's gRPC handlers (callback API). Methods not yet implemented answer
// UNIMPLEMENTED (the generated base class's default); see README.md in this folder.
#pragma once

#include "ctxstream/v1/compressor.grpc.pb.h"

namespace ctx::compressor {

class CompressorService final : public ctxstream::v1::Compressor::CallbackService {};

}  // namespace ctx::compressor
