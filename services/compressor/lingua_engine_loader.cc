// Loader side of lingua_engine.h (linked into the service, never into the shared object): the
// shared SentencePiece module loader of common/tokenizer.
#include "common/tokenizer/module_loader.h"
#include "services/compressor/lingua_engine.h"

namespace ctx::compressor {

absl::StatusOr<std::unique_ptr<LinguaEngine>> LoadLinguaEngine(const std::string& library_path,
                                                               const std::string& model_dir,
                                                               const std::string& tokenizer_path,
                                                               int max_batch) {
  absl::StatusOr<CreateLinguaEngineFn> create =
      tokenizer::OpenModuleEntry<CreateLinguaEngineFn>(library_path, kCreateLinguaEngineSymbol);
  if (!create.ok()) return create.status();
  absl::Status error;
  LinguaEngine* engine = (*create)(model_dir.c_str(), tokenizer_path.c_str(), max_batch, &error);
  if (engine == nullptr) return error;
  return std::unique_ptr<LinguaEngine>(engine);
}

}  // namespace ctx::compressor
