// batch.h: what a data source yields to a rank each step (LocalBatch, src/common/local_batch.h)
// and the interface of the sources.
#pragma once
#include <cstdint>
#include <vector>

#include "src/common/local_batch.h"  // LocalBatch

namespace rw::data {

// A source of local batches; the data pipeline implements it for real datasets.
class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual LocalBatch next() = 0;
  virtual uint64_t cursor() const = 0;        // position in the stream (saved in checkpoints)
  virtual void seek(uint64_t cursor) = 0;     // resume exactly there
};

}  // namespace rw::data
