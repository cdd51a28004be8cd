// test_gpu_device_choice.cpp: the GPU a rank takes (device/gpu_device_choice.h): the override,
// each launcher's node-local rank variable, the first one set winning, ranks beyond the device
// count sharing, and the refusals. The environment is saved and restored around each case.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "device/gpu_device_choice.h"
#include "src/common/input_error.h"

namespace {

const char* const kNames[] = {"RINGWORLD_GPU_DEVICE", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID",
                              "PALS_LOCAL_RANKID", "MV2_COMM_WORLD_LOCAL_RANK", "FLUX_TASK_LOCAL_ID"};

using Vars = std::map<std::string, std::string>;

// Sets exactly `values` among kNames (the others unset) for its lifetime; restores them after.
class Environment {
 public:
  explicit Environment(const Vars& values) {
    for (const char* name : kNames) {
      const char* old = std::getenv(name);
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      unsetenv(name);
    }
    for (const auto& [name, value] : values) setenv(name.c_str(), value.c_str(), 1);
  }
  ~Environment() {
    for (const auto& [name, value] : saved_) {
      if (value) setenv(name.c_str(), value->c_str(), 1);
      else unsetenv(name.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

}  // namespace

TEST_CASE("a rank takes the GPU of its node-local rank", "[device][gpu_choice]") {
  using rw::device::choose_gpu_device;
  {
    Environment env(Vars{});
    CHECK(choose_gpu_device(4).device == 0);
    CHECK(choose_gpu_device(4).basis.find("no node-local rank") != std::string::npos);
  }
  for (const char* variable : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "PALS_LOCAL_RANKID",
                               "MV2_COMM_WORLD_LOCAL_RANK", "FLUX_TASK_LOCAL_ID"}) {
    INFO(variable);
    Environment env(Vars{{variable, "3"}});
    const auto c = choose_gpu_device(8);
    CHECK(c.device == 3);
    CHECK(c.basis.find(variable) != std::string::npos);
  }
  {
    // 8 GCDs of 4 MI250X, 8 ranks per node: rank 7 takes GCD 7; a 9th rank shares device 0.
    Environment env(Vars{{"SLURM_LOCALID", "8"}});
    const auto c = choose_gpu_device(8);
    CHECK(c.device == 0);
    CHECK(c.basis.find("share") != std::string::npos);
  }
  {
    // mpirun inside an allocation: Open MPI's own variable comes first.
    Environment env(Vars{{"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"SLURM_LOCALID", "0"}});
    CHECK(choose_gpu_device(2).device == 1);
  }
  {
    Environment env(Vars{{"RINGWORLD_GPU_DEVICE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
    CHECK(choose_gpu_device(4).device == 2);
  }
}

TEST_CASE("a GPU choice that cannot be honoured is refused", "[device][gpu_choice]") {
  using rw::device::choose_gpu_device;
  {
    Environment env(Vars{{"RINGWORLD_GPU_DEVICE", "4"}});
    CHECK_THROWS_WITH(choose_gpu_device(4), Catch::Contains("RINGWORLD_GPU_DEVICE=4") && Catch::Contains("4 devices"));
  }
  {
    Environment env(Vars{{"SLURM_LOCALID", "one"}});
    CHECK_THROWS_AS(choose_gpu_device(4), rw::InputError);
  }
  {
    Environment env(Vars{{"OMPI_COMM_WORLD_LOCAL_RANK", "-1"}});
    CHECK_THROWS_WITH(choose_gpu_device(4), Catch::Contains("OMPI_COMM_WORLD_LOCAL_RANK"));
  }
}
