// rows.cu: the kernels that reduce: RMSNorm forward/backward, cross-entropy, sum and sum of
// squares, argmax, embedding backward. Every reduction runs in an order fixed by the shapes
// alone (never by timing): no floating-point atomics, so results are the same bits every run,
// as the CPU's are (the weight gradients dw and dtable, the loss and the norms above all).
//
//   row reductions     one block per row, block_sum/block_max (simt.h: butterfly in the warp,
//                      warps in order)
//   rmsnorm dw         partial sums over fixed chunks of rows per column, then the chunks in
//                      order (two kernels)
//   sum, sum_squares   fp64: a fixed number of blocks (a function of n) each summing a fixed
//                      range, then one block summing the partials in order
//   cross-entropy      per-token losses (fp64) to the workspace, then summed in token order
//   embedding dtable   dtable[tokens[t]] += dout[t] in token order: each token is linked to the
//                      next occurrence of its id; a thread per (column, chain) walks the chain
//                      from its first occurrence adding in token order in fp32, and rounds the
//                      row's new value once (for f32 storage, the CPU's bits exactly). The links
//                      cost O(n^2) comparisons in all (n = tokens of the call).
#include <cmath>

#include "device/cuda/kernels/common.cuh"

namespace rw::device::gpu::RW_GPU_NS {
namespace {

// ---- RMSNorm ----

__global__ void rmsnorm_fwd_kernel(FpIn x, FpIn w, FpOut y, float* inv_rms, int64_t rows, int64_t cols, float eps) {
  __shared__ float scratch[kThreads / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float sum_sq = 0.f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float v = x[r * cols + c];
      sum_sq += v * v;
    }
    sum_sq = block_sum(sum_sq, scratch);
    const float inv = 1.f / sqrtf(sum_sq / static_cast<float>(cols) + eps);
    if (threadIdx.x == 0) inv_rms[r] = inv;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) y.store(r * cols + c, x[r * cols + c] * inv * w[c]);
  }
}

// dx = inv (dy w - x inv mean(dy w x inv)) per row.
__global__ void rmsnorm_bwd_dx_kernel(FpIn x, FpIn w, const float* inv_rms, FpIn dy, FpOut dx, int64_t rows,
                                      int64_t cols) {
  __shared__ float scratch[kThreads / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float inv = inv_rms[r];
    float dot = 0.f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += dy[r * cols + c] * w[c] * x[r * cols + c] * inv;
    const float mean = block_sum(dot, scratch) / static_cast<float>(cols);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      dx.store(r * cols + c, inv * (dy[r * cols + c] * w[c] - x[r * cols + c] * inv * mean));
  }
}

constexpr int64_t kRowsPerChunk = 64;

// partial[chunk, c] = sum over the chunk's rows (in order) of dy x inv.
__global__ void rmsnorm_dw_partial_kernel(FpIn x, const float* inv_rms, FpIn dy, float* partial, int64_t rows,
                                          int64_t cols) {
  const int64_t c = global_thread_x();
  const int64_t chunk = blockIdx.y;
  if (c >= cols) return;
  const int64_t r_end = (chunk + 1) * kRowsPerChunk < rows ? (chunk + 1) * kRowsPerChunk : rows;
  float sum = 0.f;
  for (int64_t r = chunk * kRowsPerChunk; r < r_end; ++r) sum += dy[r * cols + c] * x[r * cols + c] * inv_rms[r];
  partial[chunk * cols + c] = sum;
}

__global__ void rmsnorm_dw_final_kernel(const float* partial, int64_t n_chunks, FpOut dw, int64_t cols) {
  const int64_t c = global_thread_x();
  if (c >= cols) return;
  float sum = 0.f;
  for (int64_t k = 0; k < n_chunks; ++k) sum += partial[k * cols + c];
  dw.store(c, dw.load(c) + sum);
}

// ---- cross-entropy ----

// text_vocab > 0: a row's softmax is over its target's head only, columns [lo, hi) (kernel_args.h).
__global__ void cross_entropy_kernel(FpIn logits, const int32_t* targets, const float* weights, int64_t n_tokens,
                                     int64_t vocab, int64_t text_vocab, double grad_scale, FpOut dlogits,
                                     int has_dlogits, double* per_token) {
  __shared__ float scratch[kThreads / 32];
  for (int64_t t = blockIdx.x; t < n_tokens; t += gridDim.x) {
    const int32_t target = targets[t];
    const float weight = weights[t];
    const int64_t row = t * vocab;
    if (target < 0 || weight == 0.f) {
      if (has_dlogits)
        for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) dlogits.store(row + j, 0.f);
      if (threadIdx.x == 0) per_token[t] = 0.0;
      continue;
    }
    const bool second_head = text_vocab > 0 && target >= text_vocab;
    const int64_t lo = second_head ? text_vocab : 0, hi = text_vocab > 0 && !second_head ? text_vocab : vocab;
    float mx = neg_infinity();
    for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) mx = fmaxf(mx, logits[row + j]);
    mx = block_max(mx, scratch);
    float sum = 0.f;
    for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) sum += expf(logits[row + j] - mx);
    sum = block_sum(sum, scratch);
    const float lse = mx + logf(sum);
    if (threadIdx.x == 0)
      per_token[t] =
          static_cast<double>(weight) * (static_cast<double>(lse) - static_cast<double>(logits[row + target]));
    if (has_dlogits) {
      const float scale = static_cast<float>(grad_scale * static_cast<double>(weight));
      for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
        const float p = j >= lo && j < hi ? scale * expf(logits[row + j] - lse) : 0.f;
        dlogits.store(row + j, j == target ? p - scale : p);
      }
    }
  }
}

// result[0] += sum of values[0..n) : each thread a contiguous range in order, then block_sum.
__global__ void sum_in_order_kernel(const double* values, int64_t n, double* result) {
  __shared__ double scratch[kThreads / 32];
  const int64_t per_thread = (n + blockDim.x - 1) / blockDim.x;
  const int64_t begin = threadIdx.x * per_thread;
  const int64_t end = begin + per_thread < n ? begin + per_thread : n;
  double sum = 0.0;
  for (int64_t i = begin; i < end; ++i) sum += values[i];
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) result[0] += sum;
}

// ---- sum, sum of squares (fp64) ----

constexpr int64_t kReduceBlocksMax = 256;
constexpr int64_t kReduceItemsPerBlockMin = 4096;

int64_t reduce_blocks(int64_t n) {
  const int64_t blocks = (n + kReduceItemsPerBlockMin - 1) / kReduceItemsPerBlockMin;
  return blocks < 1 ? 1 : (blocks > kReduceBlocksMax ? kReduceBlocksMax : blocks);
}

// partial[block] = sum (or sum of squares) of the block's contiguous range, fp64.
__global__ void reduce_partial_kernel(FpIn x, int64_t n, int squares, double* partial) {
  __shared__ double scratch[kThreads / 32];
  const int64_t per_block = (n + gridDim.x - 1) / gridDim.x;
  const int64_t begin = blockIdx.x * per_block;
  const int64_t end = begin + per_block < n ? begin + per_block : n;
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = x[i];
    sum += squares ? v * v : v;
  }
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// ---- argmax ----

__device__ __forceinline__ void better(float& best, int32_t& best_index, float value, int32_t index) {
  // Larger wins; on a tie the smaller index (the CPU's std::max_element choice).
  if (value > best || (value == best && index < best_index)) {
    best = value;
    best_index = index;
  }
}

__global__ void argmax_kernel(FpIn x, int32_t* index, int64_t rows, int64_t cols) {
  __shared__ float best_values[kThreads / 32];
  __shared__ int32_t best_indices[kThreads / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float best = neg_infinity();
    int32_t best_index = static_cast<int32_t>(cols);  // "none yet": loses every tie
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      better(best, best_index, x[r * cols + j], static_cast<int32_t>(j));
    for (int offset = warp_size() / 2; offset > 0; offset >>= 1) {
      const float v = shfl_xor(best, offset);
      const int32_t i = shfl_xor(best_index, offset);
      better(best, best_index, v, i);
    }
    const int warp = static_cast<int>(threadIdx.x) / warp_size();
    if (lane_id() == 0) {
      best_values[warp] = best;
      best_indices[warp] = best_index;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < static_cast<int>(blockDim.x) / warp_size(); ++w)
        better(best, best_index, best_values[w], best_indices[w]);
      // A row of -inf (or NaN) values: the first index, as the CPU's loop gives.
      index[r] = best_index < cols ? best_index : 0;
    }
    __syncthreads();
  }
}

// ---- embedding backward ----

// next[t] = the next t' > t with the same token (-1: none); first[t] = 1 when no t' < t has it.
__global__ void embedding_links_kernel(const int32_t* tokens, int64_t n, int32_t* next, uint8_t* first) {
  for (int64_t t = global_thread_x(); t < n; t += grid_threads_x()) {
    const int32_t id = tokens[t];
    int64_t after = -1;
    for (int64_t u = t + 1; u < n; ++u)
      if (tokens[u] == id) {
        after = u;
        break;
      }
    int is_first = 1;
    for (int64_t u = t - 1; u >= 0; --u)
      if (tokens[u] == id) {
        is_first = 0;
        break;
      }
    next[t] = static_cast<int32_t>(after);
    first[t] = static_cast<uint8_t>(is_first);
  }
}

constexpr int64_t kTokensPerChainBlock = 256;

// Thread (column c, token chunk): for each first occurrence t in the chunk, dtable[tokens[t], c]
// += dout[t', c] over t' on t's chain, in token order, stored once.
__global__ void embedding_bwd_kernel(const int32_t* tokens, const int32_t* next, const uint8_t* first, FpIn dout,
                                     FpOut dtable, int64_t n, int64_t hidden) {
  const int64_t c = global_thread_x();
  if (c >= hidden) return;
  const int64_t t_begin = static_cast<int64_t>(blockIdx.y) * kTokensPerChainBlock;
  const int64_t t_end = t_begin + kTokensPerChainBlock < n ? t_begin + kTokensPerChainBlock : n;
  for (int64_t t = t_begin; t < t_end; ++t) {
    if (!first[t]) continue;
    const int64_t row = static_cast<int64_t>(tokens[t]) * hidden + c;
    float acc = dtable.load(row);
    for (int64_t u = t; u >= 0; u = next[u]) acc += dout[u * hidden + c];
    dtable.store(row, acc);
  }
}

unsigned row_grid(int64_t rows) { return grid_for(rows, 1, 65535); }

}  // namespace

void run(RmsNormFwdArgs& a, const LaunchContext& ctx) {
  const int64_t rows = a.x.shape[0], cols = a.x.shape[1];
  launch_kernel(&rmsnorm_fwd_kernel, dim3(row_grid(rows)), dim3(kThreads), 0, ctx, fp_in(a.x), fp_in(a.w), fp_out(a.y),
                a.inv_rms.as<float>(), rows, cols, static_cast<float>(a.eps));
}

void run(RmsNormBwdArgs& a, const LaunchContext& ctx) {
  const int64_t rows = a.x.shape[0], cols = a.x.shape[1];
  if (rows == 0 || cols == 0) return;
  launch_kernel(&rmsnorm_bwd_dx_kernel, dim3(row_grid(rows)), dim3(kThreads), 0, ctx, fp_in(a.x), fp_in(a.w),
                a.inv_rms.as<float>(), fp_in(a.dy), fp_out(a.dx), rows, cols);
  const int64_t n_chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  RW_CHECK(n_chunks <= 65535, "rmsnorm_bwd: more than 65535 x 64 rows in one call");
  float* partial = static_cast<float*>(ctx.workspace->get(static_cast<std::size_t>(n_chunks * cols) * sizeof(float)));
  launch_kernel(&rmsnorm_dw_partial_kernel, dim3(grid_for(cols, kThreads, 1L << 30), static_cast<unsigned>(n_chunks)),
                dim3(kThreads), 0, ctx, fp_in(a.x), a.inv_rms.as<float>(), fp_in(a.dy), partial, rows, cols);
  launch_kernel(&rmsnorm_dw_final_kernel, dim3(grid_for(cols, kThreads, 1L << 30)), dim3(kThreads), 0, ctx,
                static_cast<const float*>(partial), n_chunks, fp_out(a.dw), cols);
}

void run(CrossEntropyArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.logits.shape[0], vocab = a.logits.shape[1];
  if (n == 0) return;
  // Each token's term goes to token_losses when the caller asks for them (0 for ignored tokens),
  // else to scratch; loss_sum adds them in the same fixed order either way.
  double* per_token = a.token_losses.data != nullptr
                          ? a.token_losses.as<double>()
                          : static_cast<double*>(ctx.workspace->get(static_cast<std::size_t>(n) * sizeof(double)));
  const bool has_dlogits = a.dlogits.data != nullptr;
  launch_kernel(&cross_entropy_kernel, dim3(row_grid(n)), dim3(kThreads), 0, ctx, fp_in(a.logits),
                a.targets.as<int32_t>(), a.weights.as<float>(), n, vocab, a.text_vocab, a.grad_scale,
                has_dlogits ? fp_out(a.dlogits) : FpOut{}, has_dlogits ? 1 : 0, per_token);
  launch_kernel(&sum_in_order_kernel, dim3(1), dim3(kThreads), 0, ctx, static_cast<const double*>(per_token), n,
                a.loss_sum.as<double>());
}

namespace {
void reduce(const ConstTensorView& x, TensorView& result, bool squares, const LaunchContext& ctx) {
  const int64_t n = x.n_elements();
  if (n == 0) return;
  const int64_t blocks = reduce_blocks(n);
  double* partial = static_cast<double*>(ctx.workspace->get(static_cast<std::size_t>(blocks) * sizeof(double)));
  launch_kernel(&reduce_partial_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, ctx, fp_in(x), n,
                squares ? 1 : 0, partial);
  launch_kernel(&sum_in_order_kernel, dim3(1), dim3(kThreads), 0, ctx, static_cast<const double*>(partial), blocks,
                result.as<double>());
}
}  // namespace

void run(SumSquaresArgs& a, const LaunchContext& ctx) { reduce(a.x, a.result, true, ctx); }
void run(SumArgs& a, const LaunchContext& ctx) { reduce(a.x, a.result, false, ctx); }

void run(ArgmaxArgs& a, const LaunchContext& ctx) {
  const int64_t rows = a.x.shape[0], cols = a.x.shape[1];
  launch_kernel(&argmax_kernel, dim3(row_grid(rows)), dim3(kThreads), 0, ctx, fp_in(a.x), a.index.as<int32_t>(), rows,
                cols);
}

void run(EmbeddingBwdArgs& a, const LaunchContext& ctx) {
  const int64_t n = a.tokens.shape[0], hidden = a.dtable.shape[1];
  if (n == 0 || hidden == 0) return;
  const int64_t chunks = (n + kTokensPerChainBlock - 1) / kTokensPerChainBlock;
  RW_CHECK(chunks <= 65535 && n < (int64_t(1) << 31), "embedding_bwd: too many tokens in one call");
  WorkspacePlan plan;
  const std::size_t next_at = plan.add(static_cast<std::size_t>(n) * sizeof(int32_t));
  const std::size_t first_at = plan.add(static_cast<std::size_t>(n));
  char* ws = static_cast<char*>(ctx.workspace->get(plan.total()));
  int32_t* next = reinterpret_cast<int32_t*>(ws + next_at);
  uint8_t* first = reinterpret_cast<uint8_t*>(ws + first_at);
  const int32_t* tokens = a.tokens.as<int32_t>();
  launch_kernel(&embedding_links_kernel, dim3(grid_for(n, kThreads)), dim3(kThreads), 0, ctx, tokens, n, next, first);
  launch_kernel(&embedding_bwd_kernel, dim3(grid_for(hidden, kThreads, 1L << 30), static_cast<unsigned>(chunks)),
                dim3(kThreads), 0, ctx, tokens, static_cast<const int32_t*>(next), static_cast<const uint8_t*>(first),
                fp_in(a.dout), fp_out(a.dtable), n, hidden);
}

}  // namespace rw::device::gpu::RW_GPU_NS
