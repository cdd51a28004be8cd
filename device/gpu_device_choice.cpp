// gpu_device_choice.cpp: see gpu_device_choice.h.
#include "device/gpu_device_choice.h"

#include <cerrno>
#include <cstdlib>

#include "src/common/input_error.h"

namespace rw::device {
namespace {

// A non-negative integer environment variable, or -1 when unset or empty.
long env_index(const char* name) {
  const char* text = std::getenv(name);
  if (!text || !*text) return -1;
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < 0 || value > (1L << 24))
    throw InputError(std::string("environment variable ") + name + "='" + text + "': expected a non-negative integer");
  return value;
}

}  // namespace

int node_local_rank_from_environment(std::string* variable) {
  static const char* const kVariables[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID",
                                           "PALS_LOCAL_RANKID", "MV2_COMM_WORLD_LOCAL_RANK", "FLUX_TASK_LOCAL_ID"};
  for (const char* name : kVariables) {
    const long value = env_index(name);
    if (value >= 0) {
      if (variable) *variable = name;
      return static_cast<int>(value);
    }
  }
  if (variable) variable->clear();
  return -1;
}

GpuDeviceChoice choose_gpu_device(int device_count) {
  GpuDeviceChoice choice;
  const std::string count_text = std::to_string(device_count) + " device" + (device_count == 1 ? "" : "s");
  const long forced = env_index("RINGWORLD_GPU_DEVICE");
  if (forced >= 0) {
    if (forced >= device_count)
      throw InputError("RINGWORLD_GPU_DEVICE=" + std::to_string(forced) + " but this node has " + count_text);
    choice.device = static_cast<int>(forced);
    choice.basis = "RINGWORLD_GPU_DEVICE of " + count_text;
    return choice;
  }
  std::string variable;
  const int local = node_local_rank_from_environment(&variable);
  if (local < 0) {
    choice.basis = "device 0 of " + count_text + " (no node-local rank in the environment)";
    return choice;
  }
  choice.device = local % device_count;
  choice.basis = "node-local rank " + std::to_string(local) + " (" + variable + ") of " + count_text;
  if (local >= device_count) choice.basis += ": more ranks than devices on this node, so ranks share devices";
  return choice;
}

}  // namespace rw::device
