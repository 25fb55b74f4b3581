// Process-wide logging setup: spdlog to stderr, as text or as one JSON object per line.
#pragma once

#include "absl/status/status.h"

namespace ctx::obs {

// Applies --log_level (trace|debug|info|warn|error) and --log_format (text|json).
// Call once, after flags are parsed. Returns InvalidArgument for unknown values.
absl::Status InitLogging();

}  // namespace ctx::obs
