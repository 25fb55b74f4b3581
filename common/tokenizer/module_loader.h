// The one place that loads SentencePiece code into a gRPC process.
//
// Why a separate module at all: Debian's libsentencepiece bundles and exports its own
// protobuf-lite (3.14), while gRPC links libprotobuf 3.21. Linked into one executable, one copy
// binds to the other's symbols at start-up and the process dies (a segfault in libprotobuf's
// static initialisers, or sentencepiece's "compiled against 3.14" version check). So code that
// needs libsentencepiece (today: common/lingua, for XLM-R's tokenizer) is built into a shared
// object with the CMake recipe `ctx_add_sentencepiece_module` (common/tokenizer/CMakeLists.txt)
// and opened here with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND): the module resolves
// protobuf to libsentencepiece's copy first and the gRPC side never sees it. Only std, absl
// (shared) and plain structs cross the boundary.
//
// ctx_tokenizer (Llama tokenizers) needs none of this: it runs on the built-in protobuf-free
// reader (sentencepiece_model.h) and is linked directly.
//
// Modules of this repo: libctx_lingua_engine.so (services/compressor/lingua_engine.h) and the
// test module of tests/tokenizer.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ctx::tokenizer {

// Opens the module `file` and returns the address of its C-linkage entry point `symbol`.
// An absolute `file` is used as is; otherwise it is looked up next to the running executable,
// then in each of `extra_dirs` (tests pass <build>/bin). The module stays loaded for the life
// of the process. Errors (FailedPrecondition) list every path tried and why it failed.
absl::StatusOr<void*> OpenModuleSymbol(const std::string& file, const std::string& symbol,
                                       const std::vector<std::string>& extra_dirs = {});

// Typed form: `Fn` is the entry point's function pointer type.
template <class Fn>
absl::StatusOr<Fn> OpenModuleEntry(const std::string& file, const std::string& symbol,
                                   const std::vector<std::string>& extra_dirs = {}) {
  absl::StatusOr<void*> p = OpenModuleSymbol(file, symbol, extra_dirs);
  if (!p.ok()) return p.status();
  return reinterpret_cast<Fn>(*p);
}

}  // namespace ctx::tokenizer
