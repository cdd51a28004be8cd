// llama_config.h: the model's shape and parameter tensors; defined in src/common/llama_config.h
// (io/ reads and writes it too, and may include only src/common/).
#pragma once
#include "src/common/llama_config.h"
