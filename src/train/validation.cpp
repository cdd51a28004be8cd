// validation.cpp
#include "src/train/validation.h"

#include <cmath>
#include <cstdio>

#include "src/train/lwm_loss.h"
#include "src/train/progress.h"

namespace rw::train {

int64_t default_bucket_tokens(int64_t seq_len) {
  int64_t width = 1;
  while (width * 8 < seq_len) width *= 2;
  return width;
}

void add_to_buckets(const data::LocalBatch& batch, const std::vector<double>& token_losses, int64_t width,
                    std::vector<double>& sums) {
  const int64_t n_buckets = static_cast<int64_t>(sums.size() / 2);
  for (int64_t i = 0; i < batch.token_count(); ++i) {
    if (batch.targets[i] < 0 || batch.loss_weights[i] == 0.f) continue;
    const int64_t b = std::min<int64_t>(n_buckets - 1, std::max<int64_t>(0, batch.positions[i] / width));
    sums[2 * b] += token_losses[i];
    sums[2 * b + 1] += batch.loss_weights[i];
  }
}

Validator::Validator(const std::string& spec, const data::SourceGeometry& geometry, int n_batches, int64_t bucket_tokens)
    : geometry_(geometry),
      source_(data::make_data_source(spec, geometry)),
      n_batches_(n_batches),
      width_(bucket_tokens > 0 ? bucket_tokens : default_bucket_tokens(geometry.seq_len)) {}

ValidationResult Validator::evaluate(Trainer& trainer, mpi::ProcessGrid& grid) {
  const int64_t n_buckets = (geometry_.seq_len + width_ - 1) / width_;
  const model::LlamaConfig& config = trainer.model().config();
  // The buckets, then a vision model's sums of w CE and w by kind (text, vision): LWM's loss.
  std::vector<double> sums(2 * n_buckets + (config.has_vision() ? 4 : 0), 0.0), token_losses;
  double* kinds = sums.data() + 2 * n_buckets;
  source_->seek(0);  // the same held-out sequences every time
  for (int b = 0; b < n_batches_; ++b) {
    const data::LocalBatch batch = source_->next();
    trainer.forward_only(batch, &token_losses);
    add_to_buckets(batch, token_losses, width_, sums);
    if (config.has_vision())
      for (int64_t i = 0; i < batch.token_count(); ++i) {
        if (batch.targets[i] < 0 || batch.loss_weights[i] == 0.f) continue;
        const int k = batch.targets[i] >= config.vocab_size ? 1 : 0;
        kinds[2 * k] += token_losses[i];
        kinds[2 * k + 1] += batch.loss_weights[i];
      }
  }
  grid.allreduce_sum(sums.data(), static_cast<int>(sums.size()));
  ValidationResult r;
  r.sequences = sequences();
  double loss_sum = 0;
  for (int64_t b = 0; b < n_buckets; ++b) {
    loss_sum += sums[2 * b];
    r.weight += sums[2 * b + 1];
    if (sums[2 * b + 1] <= 0) continue;
    ValidationBucket bucket;
    bucket.from = b * width_;
    bucket.to = std::min<int64_t>((b + 1) * width_, geometry_.seq_len);
    bucket.loss = sums[2 * b] / sums[2 * b + 1];
    bucket.weight = sums[2 * b + 1];
    r.buckets.push_back(bucket);
  }
  r.loss = r.weight > 0 ? loss_sum / r.weight : std::nan("");
  if (config.has_vision() && r.weight > 0) {
    r.loss = lwm_loss({kinds[0], kinds[2]}, {kinds[1], kinds[3]});
    r.text_loss = kinds[1] > 0 ? kinds[0] / kinds[1] : std::nan("");
    r.vision_loss = kinds[3] > 0 ? kinds[2] / kinds[3] : std::nan("");
  }
  return r;
}

std::string validation_line(const ValidationResult& r) {
  char head[160];
  std::snprintf(head, sizeof head, "val loss %.4f (ppl %.4g) over %lld sequence(s)", r.loss, std::exp(r.loss),
                static_cast<long long>(r.sequences));
  std::string line = head;
  if (!std::isnan(r.text_loss) || !std::isnan(r.vision_loss)) {
    char kinds[96];
    std::snprintf(kinds, sizeof kinds, " (text %.4f, vision %.4f)", r.text_loss, r.vision_loss);
    line += kinds;
  }
  if (r.buckets.size() > 1) {
    line += " | loss by position:";
    for (const ValidationBucket& b : r.buckets) {
      char part[96];
      std::snprintf(part, sizeof part, " %s-%s %.4f", format_count(double(b.from)).c_str(),
                    format_count(double(b.to)).c_str(), b.loss);
      line += part;
    }
  }
  return line;
}

}  // namespace rw::train
