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
// Precision (TransformerOptions::precision, `--precision fp32|bf16`):
//   fp32  every buffer fp32 (the default; bit-identical to the model before bf16 existed).
//   bf16  the GPU's mixed precision, bf16 storage with fp32 arithmetic in every kernel
//         (device/README.md: outputs rounded to nearest even on store):
//     bf16  the working copy of the weights: FsdpParams keeps a bf16 copy of its shards,
//           refreshed by a convert kernel after each optimizer step, and all-gathers it (half
//           the bytes; ParamSource::gather_bf16); a source without one (the tests' whole-model
//           params) hands out fp32 and the model rounds each unit into one kept bf16 buffer as
//           large as the largest unit (the same bits). Every GEMM input that is an activation
//           (n1, n2, the FFN's g, u, a and their gradients da, dg, du, the final norm's output
//           nf, dlogits); the attention inputs q, k, v and dout, so the ring moves K/V in bf16.
//     fp32  the master weights, AdamW moments, gradients and their reduce-scatter (FsdpParams,
//           Optimizer: untouched by this option); the residual stream x and its gradient dx
//           (a residual add of a small update into bf16 x would lose the update's low bits at
//           every layer: the one place where rounding accumulates with depth); the RMSNorm
//           statistics inv_rms; the attention output, lse and delta (the ring's partial outputs
//           and the softmax statistics are merged across hops) and dq, dk, dv (dK/dV accumulate
//           across hops); the logits and the loss (cross_entropy: fp32 softmax, f64 sum); the
//           saved tensors of the backward (x_in, attention output, lse): the backward recomputes
//           q, k, v from x_in and must reproduce the forward's exactly, or the attention
//           backward's P = exp(S - lse) would not be the forward's softmax (bf16 x_in would
//           break that), and the attention output is the fp32 accumulator the delta kernel reads.
//     GEMM outputs that are accumulated (beta = 1: the residual, dn2, dn1, weight gradients) are
//     fp32; outputs only read by the next kernel (q, k, v, g, u, da, dout) are stored bf16.
//   The attention op must take bf16 (AttentionOp::takes): the ring and generation's KV-cache
//   attention do; one that does not makes the constructor refuse bf16 with a message.
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
#include "src/model/precision.h"

namespace rw::model {

class TransformerWorkspace;
struct QkvBuffers;
struct DeviceBatch;
struct Operand;
struct Output;

struct TransformerOptions {
  int64_t ffn_chunk_tokens = 1024;   // rows per FFN chunk
  int64_t loss_chunk_tokens = 512;   // rows per logits/loss chunk
  Precision precision = Precision::fp32;  // see above
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
  // The unit's weights in the working precision: gather(unit), and in bf16 mode rounded into
  // the workspace's bf16 copy (a convert kernel on the compute stream).
  Operand gather(int unit);
  void project_qkv(const Operand& w, const DeviceBatch& in, int64_t n, const float* x, const QkvBuffers& b);
  void layer_forward(int layer, const Operand& w, const DeviceBatch& in, const data::LocalBatch& batch,
                     bool training);
  void layer_backward(int layer, const Operand& w, float* grad, const DeviceBatch& in,
                      const data::LocalBatch& batch);
  void head(const Operand& w, float* grad, const DeviceBatch& in, int64_t n, float* logits, double grad_scale,
            bool token_losses);
  void embed(const Operand& w, const DeviceBatch& in, int64_t n);
  void copy(float* dst, const float* src, int64_t n);  // device to device, on the compute stream
  void add(const float* x, float* y, int64_t n);       // y += x
  void fill_zero(float* x, int64_t n);
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const Operand& a, int64_t lda,
            const Operand& b, int64_t ldb, float beta, const Output& c, int64_t ldc);
  Operand wk(const void* p) const;  // a working-precision buffer read by a kernel
  Output wo(void* p) const;         // ... written by a kernel
  AttentionShape attention_shape(const data::LocalBatch& batch) const;

  LlamaConfig config_;
  std::vector<ParamUnit> units_;
  ParamSource<float>& params_;
  AttentionOp<float>& attention_;
  device::ExecContext exec_;
  TransformerOptions options_;
  device::DType working_;  // working_dtype(options_.precision)
  std::unique_ptr<TransformerWorkspace> ws_;
};

}  // namespace rw::model
