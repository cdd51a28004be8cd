// test_micro_batches.cpp: micro-batch geometry (src/data/global_batch.h) and what the planner
// makes of micro-batches (src/plan/): activations of one micro-batch resident, parameters and the
// batch not divided, the largest micro-batch that fits, the report's choice for LWM's 128K stage
// on 32 H100s (the 174 GiB per rank at once), FSDP collectives once per micro-batch.
// The gradient itself against the whole batch is tests/mpi/test_training.cpp; measured memory
// tests/integration/test_training_numerics.cpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "src/common/input_error.h"
#include "src/data/global_batch.h"
#include "src/plan/device_table.h"
#include "src/plan/memory_model.h"
#include "src/plan/plan_report.h"
#include "src/plan/step_time_model.h"
#include "src/train/trainer.h"

using namespace rw;

namespace {

// LWM's 128K stage: LLaMA-2 7B, 4M tokens per step = 32 sequences, one ring of 32 ranks.
plan::TrainShape lwm_128k() {
  plan::TrainShape s;
  s.model = model::preset_config("7b");
  s.seq_len = 131072;
  s.dp = 1;
  s.sp = 32;
  s.sequences_per_group = 32;
  return s;
}

plan::PlanRequest h100_request(const plan::TrainShape& shape) {
  plan::PlanRequest q;
  q.shape = shape;
  q.model_name = "model 7b";
  q.device = plan::find_device("h100");
  q.peak_flops_per_s = q.device.fp32_tflops * 1e12;
  q.peak_basis = "datasheet";
  q.capacity_bytes = q.device.memory_gib * 1024.0 * 1024.0 * 1024.0;
  q.capacity_basis = "datasheet";
  q.link_bytes_per_s = q.device.link_gb_per_s * 1e9;
  q.reserve_bytes = q.device.reserve_mib * 1024 * 1024;
  return q;
}

}  // namespace

TEST_CASE("micro-batch tokens: whole sequences of every dp group, dividing the global batch", "[micro]") {
  CHECK(data::micro_batch_sequences(0, 4096, 256, 2) == 0);
  CHECK(data::micro_batch_sequences(4096, 4096, 256, 2) == 0);   // the whole batch
  CHECK(data::micro_batch_sequences(8192, 4096, 256, 2) == 0);   // more than the batch: the whole batch
  CHECK(data::micro_batch_sequences(512, 4096, 256, 2) == 1);
  CHECK(data::micro_batch_sequences(1024, 4096, 256, 2) == 2);
  CHECK_THROWS_AS(data::micro_batch_sequences(256, 4096, 256, 2), InputError);   // not a multiple of seq x dp
  CHECK_THROWS_AS(data::micro_batch_sequences(1536, 4096, 256, 2), InputError);  // does not divide the batch
  CHECK_THROWS_AS(data::micro_batch_sequences(-512, 4096, 256, 2), InputError);
  CHECK_THROWS_AS(train::parse_on_nonfinite("ignore"), InputError);
  CHECK(train::parse_on_nonfinite("skip") == train::OnNonFinite::skip);
}

TEST_CASE("sequences_of cuts whole sequences out of a local batch", "[micro]") {
  data::LocalBatch b;
  b.n_sequences = 3;
  b.n_local = 2;
  b.tokens = {1, 2, 3, 4, 5, 6};
  b.targets = {2, -1, 4, -1, 6, -1};
  b.positions = {0, 1, 0, 1, 0, 1};
  b.segment_ids = {0, 0, 0, 0, 1, 1};
  b.loss_weights = {1, 0, 1, 0, 0.5f, 0};
  const data::LocalBatch m = data::sequences_of(b, 1, 2);
  CHECK(m.n_sequences == 2);
  CHECK(m.n_local == 2);
  CHECK(m.tokens == std::vector<int32_t>{3, 4, 5, 6});
  CHECK(m.targets == std::vector<int32_t>{4, -1, 6, -1});
  CHECK(m.positions == std::vector<int32_t>{0, 1, 0, 1});
  CHECK(m.segment_ids == std::vector<int32_t>{0, 0, 1, 1});
  CHECK(m.loss_weights == std::vector<float>{1, 0, 0.5f, 0});
}

TEST_CASE("plan: micro-batches divide the saved activations, not the parameters or the batch", "[micro][planner]") {
  const plan::TrainShape whole = lwm_128k();
  plan::TrainShape micro = whole;
  micro.micro_batch_sequences = 8;
  REQUIRE(micro.micro_batches() == 4);
  const plan::MemoryPrediction a = plan::predict_memory(whole, 0), b = plan::predict_memory(micro, 0);
  CHECK(b.at_rest_bytes() == a.at_rest_bytes());
  CHECK(b.saved_activation_bytes * 4 == a.saved_activation_bytes);  // layers x 4 (2 N h + N heads), N / 4
  CHECK(b.batch_bytes == a.batch_bytes * 1.25);                    // the whole batch and one micro-batch copy
  CHECK(b.total_bytes() < 0.3 * a.total_bytes());
  // FSDP gathers and reduce-scatters run once per micro-batch; the FLOPs do not change.
  const plan::StepTimePrediction ta = plan::predict_step_time(whole, 67e12, 450e9),
                                 tb = plan::predict_step_time(micro, 67e12, 450e9);
  CHECK(tb.fsdp_s == Approx(4 * ta.fsdp_s).epsilon(1e-12));
  CHECK(tb.flops.executed_per_rank() == ta.flops.executed_per_rank());
  micro.micro_batch_sequences = 5;  // does not divide 32
  CHECK_THROWS_AS(micro.validate(), InputError);
}

TEST_CASE("plan: the largest micro-batch that fits, and none when one sequence does not", "[micro][planner]") {
  const plan::TrainShape s = lwm_128k();
  auto total = [&](int64_t m) {
    plan::TrainShape t = s;
    t.micro_batch_sequences = m;
    return plan::predict_memory(t, 0).total_bytes();
  };
  CHECK(plan::largest_fitting_micro_batch(s, total(32) + 1, 0) == 32);
  CHECK(plan::largest_fitting_micro_batch(s, 0.5 * (total(8) + total(16)), 0) == 8);
  CHECK(plan::largest_fitting_micro_batch(s, total(8), 0) == 8);
  CHECK(plan::largest_fitting_micro_batch(s, total(1) - 1, 0) == 0);
}

TEST_CASE("plan: LWM's 128K stage on 32 H100s is reported in the micro-batches that fit", "[micro][planner]") {
  plan::PlanRequest q = h100_request(lwm_128k());
  const std::string chosen = plan::plan_report(q);
  INFO(chosen);
  CHECK(chosen.find("micro-batches: 4 of 8 sequence(s) per dp group, --micro-batch-tokens 1048576 (chosen: the "
                    "largest that fits; the whole batch at once needs 174.37 GiB)") != std::string::npos);
  CHECK(chosen.find("(47.98 GiB) of 72.00 GiB usable (80.00 GiB less 10% headroom; datasheet): 67%: fits") != std::string::npos);
  q.choose_micro_batch = false;  // --micro-batch-tokens 0
  const std::string whole = plan::plan_report(q);
  CHECK(whole.find("micro-batches:") == std::string::npos);
  CHECK(whole.find("(174.37 GiB) of 72.00 GiB usable") != std::string::npos);
  CHECK(whole.find("DOES NOT FIT") != std::string::npos);
}
