#include "common/tokenizer/module_loader.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace ctx::tokenizer {

absl::StatusOr<void*> OpenModuleSymbol(const std::string& file, const std::string& symbol,
                                       const std::vector<std::string>& extra_dirs) {
  namespace fs = std::filesystem;
  std::vector<std::string> candidates;
  if (fs::path(file).is_absolute()) {
    candidates.push_back(file);
  } else {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) candidates.push_back((exe.parent_path() / file).string());
    for (const std::string& dir : extra_dirs) {
      if (!dir.empty()) candidates.push_back((fs::path(dir) / file).string());
    }
  }
  // dlerror() is process-global state: serialize so that each error names its own cause.
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::string tried;
  for (const std::string& path : candidates) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      absl::StrAppend(&tried, " ", path, " (missing)");
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      const char* err = dlerror();
      absl::StrAppend(&tried, " ", path, " (", err ? err : "dlopen failed", ")");
      continue;
    }
    dlerror();  // clear
    void* entry = dlsym(handle, symbol.c_str());
    if (entry == nullptr) {
      const char* err = dlerror();
      return absl::FailedPreconditionError(
          absl::StrCat("module ", path, " has no entry point ", symbol, ": ", err ? err : "null"));
    }
    return entry;  // never dlclose'd: objects made by the module live as long as the process
  }
  return absl::FailedPreconditionError(absl::StrCat("cannot load module ", file,
                                                    " (build it with its CMake target; it must lie "
                                                    "next to the executable); tried:",
                                                    tried));
}

}  // namespace ctx::tokenizer
