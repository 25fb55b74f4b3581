// dlopen side of lingua_engine.h (linked into the service, never into the shared object).
#include <dlfcn.h>

#include "absl/strings/str_cat.h"
#include "services/compressor/lingua_engine.h"

namespace ctx::compressor {

absl::StatusOr<std::unique_ptr<LinguaEngine>> LoadLinguaEngine(const std::string& library_path,
                                                               const std::string& model_dir,
                                                               const std::string& tokenizer_path,
                                                               int max_batch) {
  // Never closed: the engine lives as long as the process.
  void* lib = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (lib == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("cannot load the classifier engine ", library_path, ": ", dlerror()));
  }
  auto create = reinterpret_cast<CreateLinguaEngineFn>(dlsym(lib, kCreateLinguaEngineSymbol));
  if (create == nullptr) {
    return absl::InternalError(
        absl::StrCat(library_path, " has no ", kCreateLinguaEngineSymbol, ": ", dlerror()));
  }
  absl::Status error;
  LinguaEngine* engine = create(model_dir.c_str(), tokenizer_path.c_str(), max_batch, &error);
  if (engine == nullptr) return error;
  return std::unique_ptr<LinguaEngine>(engine);
}

}  // namespace ctx::compressor
