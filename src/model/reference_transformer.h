// reference_transformer.h: the test oracle: the LLaMA decoder of transformer.h on host arrays,
// in T (double: the fp64 reference every fp32 result is compared with; float: a plain fp32
// single-process run, the yardstick of the tests' tolerances), with the host ops of
// device/cpu/model_ops.h (src/model/ops.h) and any MatMul<T>. The same algorithm, chunking and
// memory behaviour as the device model (Transformer), but not in the training path.
//   x = embed(tokens)
//   per layer: x += o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))), n1 = rmsnorm(x)
//              x += down_proj(silu(gate_proj(n2)) * up_proj(n2)),               n2 = rmsnorm(x)
//   logits = lm_head(rmsnorm(x))
// A vision model (LlamaConfig::vision_vocab_size > 0, LWM): embed is the concatenated table
// embed_tokens ‖ embed_vision indexed by the token's id (so the input picks the table), the
// logits are lm_head ‖ vision_head ([.., vocab_size + vision_vocab_size]) and each target's
// cross-entropy is over its own head's columns (the target picks the head; CrossEntropyArgs::
// text_vocab).
// Attention goes through an AttentionOp (the ring in training); the FFN and the logits run over
// chunks of tokens, so no [tokens x intermediate] or [tokens x vocab] buffer exists for the
// whole shard. Memory: per layer the backward keeps the layer input, the attention output and
// its lse (O(layers x shard x hidden)); everything else of a layer is recomputed in its backward.
#pragma once
#include <cstdint>
#include <vector>

#include "src/data/batch.h"
#include "src/model/llama_config.h"
#include "src/model/model_interfaces.h"
#include "src/model/transformer.h"

namespace rw::model {

// Host pointers throughout (ParamSource, AttentionOp and MatMul on host memory).
template <class T>
class ReferenceTransformer {
 public:
  ReferenceTransformer(const LlamaConfig& config, ParamSource<T>& params, AttentionOp<T>& attention, MatMul<T>& matmul,
              TransformerOptions options = {});

  // Sum over local target tokens of weight * CE. If logits is not null it receives
  // [batch, n_local, total_vocab_size()] (local token order; text then vision columns); if token_losses is not null, it receives each
  // local token's weight * CE ([batch, n_local]; 0 for ignored tokens).
  double forward(const data::LocalBatch& batch, T* logits, double* token_losses = nullptr);

  // Forward, then backward of grad_scale * (sum of weight * CE); each unit's gradient goes to
  // ParamSource::reduce_grad. Returns the loss sum as forward().
  double forward_backward(const data::LocalBatch& batch, double grad_scale);

  const LlamaConfig& config() const { return config_; }

 private:
  struct Saved;  // per-layer tensors kept for the backward
  void layer_forward(int layer, const T* w, const data::LocalBatch& batch, std::vector<T>& x, Saved* saved);
  void layer_backward(int layer, const T* w, T* grad, const data::LocalBatch& batch, const Saved& saved,
                      std::vector<T>& dx);
  double head(const T* w, T* grad, const data::LocalBatch& batch, const std::vector<T>& x, T* logits,
              double grad_scale, std::vector<T>* dx, double* token_losses = nullptr);
  // q, k, v (RoPE applied) and the normalised input from a layer input x.
  void project_qkv(const T* w, const data::LocalBatch& batch, const std::vector<T>& x, std::vector<T>& n1,
                   std::vector<T>& inv1, std::vector<T>& q, std::vector<T>& k, std::vector<T>& v);

  LlamaConfig config_;
  std::vector<ParamUnit> units_;
  ParamSource<T>& params_;
  AttentionOp<T>& attention_;
  MatMul<T>& matmul_;
  TransformerOptions options_;
};

}  // namespace rw::model
