#include "services/inference/tokenizer_loader.h"

#include <dlfcn.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace ctx::inference {

absl::StatusOr<std::unique_ptr<TokenizerApi>> LoadTokenizerModule(const std::string& model_dir,
                                                                  const std::string& extra_dir) {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::vector<std::string> candidates;
  if (!ec) candidates.push_back((exe.parent_path() / kTokenizerModuleName).string());
  if (!extra_dir.empty()) {
    candidates.push_back((std::filesystem::path(extra_dir) / kTokenizerModuleName).string());
  }
  std::string tried;
  for (const std::string& path : candidates) {
    if (!std::filesystem::exists(path)) {
      absl::StrAppend(&tried, " ", path, " (missing)");
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      absl::StrAppend(&tried, " ", path, " (", dlerror(), ")");
      continue;
    }
    auto load = reinterpret_cast<LoadTokenizerFn>(dlsym(handle, kLoadTokenizerSymbol));
    if (load == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " has no symbol ", kLoadTokenizerSymbol));
    }
    std::string error;
    TokenizerApi* t = load(model_dir.c_str(), &error);
    if (t == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("tokenizer of ", model_dir, ": ", error));
    }
    return std::unique_ptr<TokenizerApi>(t);
  }
  return absl::FailedPreconditionError(
      absl::StrCat("tokenizer module ", kTokenizerModuleName, " not found:", tried));
}

}  // namespace ctx::inference
