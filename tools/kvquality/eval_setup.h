// Set-up shared by the calibrate and kvquality tools (library ctx_kveval): the model, its
// tokenizer and the codec's view of it (fingerprint, KV geometry), and the tools' fatal-error
// and file helpers. Command-line tools only: errors print "<tool>: <message>" and exit(1).
#pragma once

#include <memory>
#include <string>

#include "common/codec/kv_chunk.h"
#include "common/model/model.h"
#include "common/tokenizer/tokenizer.h"

namespace ctx::kveval {

// Prints "<program name>: what" to stderr and exits with status 1.
[[noreturn]] void Die(const std::string& what);

// The whole file, or Die.
std::string ReadFileOrDie(const std::string& path);

struct EvalModel {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  codec::ModelFingerprint fingerprint{};
  codec::KvGeometry geometry;  // layers x kv_heads x head_dim
};

// Loads the model and tokenizer of a model directory, or Die.
EvalModel LoadEvalModelOrDie(const std::string& model_dir);

}  // namespace ctx::kveval
