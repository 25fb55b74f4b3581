// libctx_test_spm_module.so: libsentencepiece (ctx_tokenizer_reference) built with the shared
// recipe ctx_add_sentencepiece_module and opened by the module loader in module_loader_test.cc.
#include <string>
#include <vector>

#include "common/tokenizer/sentencepiece_backend.h"

extern "C" __attribute__((visibility("default"))) bool ctx_test_spm_encode(const char* model_path,
                                                                           const char* text,
                                                                           std::vector<int>* ids,
                                                                           std::string* error) {
  auto sp = ctx::tokenizer::internal::SentencePieceBackend::Load(model_path, error);
  return sp != nullptr && sp->Encode(text, ids, error);
}
