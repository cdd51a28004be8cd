// data_sources.cpp
#include "src/data/data_sources.h"

#include "src/common/input_error.h"
#include "src/data/packed_loader.h"
#include "src/data/passkey.h"
#include "src/data/synthetic_source.h"

namespace rw::data {

void check_data_spec(const std::string& spec) {
  if (spec == "synthetic" || spec == "synthetic:flat" || spec == "synthetic:passkey") return;
  if ((spec.rfind("file:", 0) == 0 && spec.size() > 5) || (spec.rfind("file-concat:", 0) == 0 && spec.size() > 12)) return;
  throw InputError("unknown data source '" + spec + "' (synthetic, synthetic:flat, synthetic:passkey, file:PATH, file-concat:PATH)");
}

std::unique_ptr<DataSource> make_data_source(const std::string& spec, const SourceGeometry& g) {
  check_data_spec(spec);
  if (spec == "synthetic:passkey") {
    PasskeyOptions o;
    o.vocab_size = static_cast<int>(g.vocab_size);
    return std::make_unique<PasskeySource>(o, g.seed, g.seq_len, g.global_sequences, g.dp, g.dp_rank, g.sp,
                                           g.sp_rank, g.layout);
  }
  if (spec.rfind("synthetic", 0) == 0) {
    SyntheticOptions o;
    o.seed = g.seed;
    o.seq_len = g.seq_len;
    o.global_sequences = g.global_sequences;
    o.vocab_size = static_cast<int>(g.vocab_size);
    o.packed = spec == "synthetic";
    return std::make_unique<SyntheticSource>(o, g.dp, g.dp_rank, g.sp, g.sp_rank, g.layout);
  }
  const bool concat = spec.rfind("file-concat:", 0) == 0;
  PackedLoaderOptions o;
  o.seq_len = g.seq_len;
  o.global_sequences = g.global_sequences;
  o.seed = g.seed;
  o.masked = !concat;
  o.dp = g.dp;
  o.dp_rank = g.dp_rank;
  o.sp = g.sp;
  o.sp_rank = g.sp_rank;
  o.layout = g.layout;
  // A dataset's ids are text and vision ids in the model's one id space (prepare --vision).
  return std::make_unique<PackedLoader>(spec.substr(concat ? 12 : 5), o, g.vocab_size + g.vision_vocab_size);
}

}  // namespace rw::data
