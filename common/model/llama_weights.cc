#include "common/model/llama_weights.h"

#include "absl/strings/str_cat.h"

namespace ctx::model {
namespace {

absl::Status Read(const tensor::CheckpointWeights& ckpt, const std::string& name,
                  std::initializer_list<int64_t> shape, std::vector<float>* out) {
  const std::vector<int64_t> dims(shape);
  absl::StatusOr<std::vector<float>> t = ckpt.GetFloat(name, dims);
  if (!t.ok()) return absl::FailedPreconditionError(t.status().message());
  *out = std::move(*t);
  return absl::OkStatus();
}

// The bfloat16 bits of `w`, or false if some value is not exactly a bfloat16.
bool ExactBF16(const std::vector<float>& w, std::vector<uint16_t>* out) {
  out->resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    const uint16_t h = tensor::FloatToBF16(w[i]);
    if (tensor::BF16ToFloat(h) != w[i]) {
      out->clear();
      return false;
    }
    (*out)[i] = h;
  }
  return true;
}

void KeepBF16Copies(LlamaWeights& w) {
  std::vector<LlamaLayerWeightsBF16> layers(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LlamaLayerWeights& f = w.layers[l];
    LlamaLayerWeightsBF16& b = layers[l];
    if (!ExactBF16(f.wq, &b.wq) || !ExactBF16(f.wk, &b.wk) || !ExactBF16(f.wv, &b.wv) ||
        !ExactBF16(f.wo, &b.wo) || !ExactBF16(f.w_gate, &b.w_gate) || !ExactBF16(f.w_up, &b.w_up) ||
        !ExactBF16(f.w_down, &b.w_down)) {
      return;
    }
  }
  std::vector<uint16_t> head;
  if (!ExactBF16(w.lm_head.empty() ? w.embed : w.lm_head, &head)) return;
  w.layers_bf16 = std::move(layers);
  w.lm_head_bf16 = std::move(head);
}

void PackMatrices(const LlamaConfig& c, LlamaWeights& w) {
  const int H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  w.layers_packed.resize(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LlamaLayerWeights& f = w.layers[l];
    LlamaLayerWeightsPacked& p = w.layers_packed[l];
    p.wq = tensor::PackedMatrix(f.wq.data(), Q, H, H);
    p.wk = tensor::PackedMatrix(f.wk.data(), KV, H, H);
    p.wv = tensor::PackedMatrix(f.wv.data(), KV, H, H);
    p.wo = tensor::PackedMatrix(f.wo.data(), H, Q, Q);
    p.w_gate = tensor::PackedMatrix(f.w_gate.data(), I, H, H);
    p.w_up = tensor::PackedMatrix(f.w_up.data(), I, H, H);
    p.w_down = tensor::PackedMatrix(f.w_down.data(), H, I, I);
  }
  w.lm_head_packed = tensor::PackedMatrix(w.lm_head_data(), c.vocab_size, H, H);
}

}  // namespace

absl::StatusOr<LlamaWeights> LoadLlamaWeights(const tensor::CheckpointWeights& ckpt,
                                              const LlamaConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t Q = c.q_dim(), KV = c.kv_dim();
  LlamaWeights w;
  absl::Status s;
  if (s = Read(ckpt, "model.embed_tokens.weight", {V, H}, &w.embed); !s.ok()) return s;
  w.layers.resize(c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    LlamaLayerWeights& lw = w.layers[l];
    if (s = Read(ckpt, p + "input_layernorm.weight", {H}, &lw.input_norm); !s.ok()) return s;
    if (s = Read(ckpt, p + "self_attn.q_proj.weight", {Q, H}, &lw.wq); !s.ok()) return s;
    if (s = Read(ckpt, p + "self_attn.k_proj.weight", {KV, H}, &lw.wk); !s.ok()) return s;
    if (s = Read(ckpt, p + "self_attn.v_proj.weight", {KV, H}, &lw.wv); !s.ok()) return s;
    if (s = Read(ckpt, p + "self_attn.o_proj.weight", {H, Q}, &lw.wo); !s.ok()) return s;
    if (s = Read(ckpt, p + "post_attention_layernorm.weight", {H}, &lw.post_norm); !s.ok()) {
      return s;
    }
    if (s = Read(ckpt, p + "mlp.gate_proj.weight", {I, H}, &lw.w_gate); !s.ok()) return s;
    if (s = Read(ckpt, p + "mlp.up_proj.weight", {I, H}, &lw.w_up); !s.ok()) return s;
    if (s = Read(ckpt, p + "mlp.down_proj.weight", {H, I}, &lw.w_down); !s.ok()) return s;
  }
  if (s = Read(ckpt, "model.norm.weight", {H}, &w.final_norm); !s.ok()) return s;
  const bool has_head = ckpt.Get("lm_head.weight").ok();
  if (has_head) {
    if (s = Read(ckpt, "lm_head.weight", {V, H}, &w.lm_head); !s.ok()) return s;
  } else if (!c.tie_word_embeddings) {
    return absl::FailedPreconditionError(
        "checkpoint has no lm_head.weight and config says tie_word_embeddings=false");
  }
  KeepBF16Copies(w);
  PackMatrices(c, w);
  return w;
}

}  // namespace ctx::model
