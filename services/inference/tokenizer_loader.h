// Loads libctx_inference_tokenizer.so (see tokenizer_api.h for why it is a module).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/inference/tokenizer_api.h"

namespace ctx::inference {

// Looks for the module next to the running executable, then in `extra_dir` (if non-empty).
// The module stays loaded for the life of the process.
absl::StatusOr<std::unique_ptr<TokenizerApi>> LoadTokenizerModule(
    const std::string& model_dir, const std::string& extra_dir = "");

}  // namespace ctx::inference
