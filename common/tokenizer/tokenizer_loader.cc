// The process side of tokenizer_api.h (linked into services, never into the module).
#include "absl/strings/str_cat.h"
#include "common/tokenizer/module_loader.h"
#include "common/tokenizer/tokenizer_api.h"

namespace ctx::tokenizer {

absl::StatusOr<std::unique_ptr<TokenizerApi>> LoadTokenizerModule(const std::string& model_dir,
                                                                  const std::string& extra_dir) {
  absl::StatusOr<LoadTokenizerFn> load =
      OpenModuleEntry<LoadTokenizerFn>(kTokenizerModuleName, kLoadTokenizerSymbol, {extra_dir});
  if (!load.ok()) return load.status();
  std::string error;
  TokenizerApi* t = (*load)(model_dir.c_str(), &error);
  if (t == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("tokenizer of ", model_dir, ": ", error));
  }
  return std::unique_ptr<TokenizerApi>(t);
}

}  // namespace ctx::tokenizer
