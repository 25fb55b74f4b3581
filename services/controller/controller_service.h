// The controller service's gRPC handlers (callback API). Methods not yet implemented answer
// UNIMPLEMENTED (the generated base class's default); see README.md in this folder.
#pragma once

#include "ctxstream/v1/controller.grpc.pb.h"

namespace ctx::controller {

class ControllerService final : public ctxstream::v1::Controller::CallbackService {};

}  // namespace ctx::controller
