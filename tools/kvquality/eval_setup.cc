#include "tools/kvquality/eval_setup.h"

#include <errno.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ctx::kveval {

void Die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what.c_str());
  std::exit(1);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

EvalModel LoadEvalModelOrDie(const std::string& model_dir) {
  EvalModel e;
  auto model = model::Model::Load(model_dir);
  if (!model.ok()) Die(model.status().ToString());
  e.model = *std::move(model);
  auto tok = tokenizer::Tokenizer::LoadFromModelDir(model_dir);
  if (!tok.ok()) Die(tok.status().ToString());
  e.tokenizer = *std::move(tok);
  e.fingerprint = e.model->fingerprint().bytes;
  const model::LlamaConfig& cfg = e.model->config();
  e.geometry = {cfg.num_layers, cfg.num_kv_heads, cfg.head_dim};
  return e;
}

}  // namespace ctx::kveval
