// transformer.h: the LLaMA decoder (Hugging Face's definition) on this rank's token shard, in
// fp32 on a device backend: every activation in device memory, every op a backend kernel on the
// compute stream of an ExecContext (device/exec_context.h).
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
//
// Device memory: persistent workspaces (transformer_workspace.h), sized from the batch shape at
// the first call and reused by every layer and step; they grow only when a larger batch comes
// (workspace_allocations() counts allocations). The batch's inputs (tokens, targets, positions,
// segment ids, loss weights) go up once per call through a pinned staging buffer; the host
// reads the loss sum (one f64) at the end of each call, and with forward()'s optional outputs
// the logits or per-token losses: those are the sync points.
//
// The fp64 reference of the tests is ReferenceTransformer (reference_transformer.h): the same
// algorithm on host arrays, not in the training path.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "device/exec_context.h"
#include "src/data/batch.h"
#include "src/model/llama_config.h"
#include "src/model/model_interfaces.h"

namespace rw::model {

class TransformerWorkspace;
struct QkvBuffers;
struct DeviceBatch;

struct TransformerOptions {
  int64_t ffn_chunk_tokens = 1024;   // rows per FFN chunk
  int64_t loss_chunk_tokens = 512;   // rows per logits/loss chunk
};

class Transformer {
 public:
  // params and attention hand out and take device pointers of exec.backend (model_interfaces.h).
  Transformer(const LlamaConfig& config, ParamSource<float>& params, AttentionOp<float>& attention,
              const device::ExecContext& exec, TransformerOptions options = {});
  ~Transformer();
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  // Sum over local target tokens of weight * CE. If logits (host memory) is not null it receives
  // [batch, n_local, total_vocab_size()] (local token order; text then vision columns); if token_losses (host) is not null, it receives
  // each local token's weight * CE ([batch, n_local]; 0 for ignored tokens) and the sum is taken
  // over them in token order.
  double forward(const data::LocalBatch& batch, float* logits, double* token_losses = nullptr);

  // The embedding and every layer, not the head: attention sees every layer's K and V (the
  // prefill of generation keeps them as its KV cache, src/infer/cached_attention.h); no logits,
  // no loss, and no lm_head GEMM over the tokens.
  void forward_without_head(const data::LocalBatch& batch);

  // Forward, then backward of grad_scale * (sum of weight * CE); each unit's gradient goes to
  // ParamSource::reduce_grad (a device buffer reused after the call). Returns the loss sum as
  // forward().
  double forward_backward(const data::LocalBatch& batch, double grad_scale);

  const LlamaConfig& config() const { return config_; }
  const device::ExecContext& exec() const { return exec_; }
  // Device allocations made by the workspaces so far (grows only with the batch shape).
  int64_t workspace_allocations() const;
  // Bytes of device memory the workspaces hold now.
  std::size_t workspace_bytes() const;

 private:
  // The batch's inputs up, the workspaces reserved, the loss zeroed.
  DeviceBatch begin(const data::LocalBatch& batch, bool training, bool token_losses);
  // begin, the embedding and every layer (forward only); the residual stream holds the result.
  DeviceBatch forward_layers(const data::LocalBatch& batch, bool token_losses);
  void project_qkv(const float* w, const DeviceBatch& in, int64_t n, const float* x, const QkvBuffers& b);
  void layer_forward(int layer, const float* w, const DeviceBatch& in, const data::LocalBatch& batch, bool training);
  void layer_backward(int layer, const float* w, float* grad, const DeviceBatch& in, const data::LocalBatch& batch);
  void head(const float* w, float* grad, const DeviceBatch& in, int64_t n, float* logits, double grad_scale,
            bool token_losses);
  void copy(float* dst, const float* src, int64_t n);  // device to device, on the compute stream
  void add(const float* x, float* y, int64_t n);       // y += x
  void fill_zero(float* x, int64_t n);
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
  AttentionShape attention_shape(const data::LocalBatch& batch) const;

  LlamaConfig config_;
  std::vector<ParamUnit> units_;
  ParamSource<float>& params_;
  AttentionOp<float>& attention_;
  device::ExecContext exec_;
  TransformerOptions options_;
  std::unique_ptr<TransformerWorkspace> ws_;
};

}  // namespace rw::model
