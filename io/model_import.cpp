// model_import.cpp: the importers' shared pieces (conversion, the output file, its attributes).
#include "io/model_import.h"

#include <cstring>

#include "io/float16.h"
#include "io/param_file_reader.h"
#include "io/param_file_writer.h"

namespace rw::io {

static_assert(sizeof(float) == 4, "float32 expected");

void convert_to_f32(const uint8_t* src, SourceDtype dtype, int64_t count, float* dst) {
  // The files are little-endian; so is every machine ringworld builds for (x86-64, aarch64).
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host expected");
  switch (dtype) {
    case SourceDtype::f32:
      std::memcpy(dst, src, static_cast<std::size_t>(count) * 4);
      return;
    case SourceDtype::bf16:
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_float(h);
      }
      return;
    case SourceDtype::f16:
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = half_to_float(h);
      }
      return;
  }
}

void write_imported_model(const ImportSource& source, const std::string& output, const std::string& tokenizer,
                          const std::function<void(int64_t, int64_t)>& progress) {
  const HfModelConfig& c = source.config();
  ParamFileWriter writer(output, c.llama);
  writer.add_attribute("max_position_embeddings", c.max_position_embeddings);
  if (c.bos_token_id >= 0) writer.add_attribute("bos_token_id", c.bos_token_id);
  if (c.eos_token_id >= 0) writer.add_attribute("eos_token_id", c.eos_token_id);
  if (!c.torch_dtype.empty()) writer.add_attribute("torch_dtype", c.torch_dtype);
  writer.add_attribute("source", source.description());
  if (!tokenizer.empty()) writer.add_attribute("tokenizer", tokenizer);
  source.write_tensors(writer, progress);
  writer.finish();
}

ImportedAttributes read_imported_attributes(const std::string& path) {
  ParamFileReader reader(path);
  ImportedAttributes a;
  reader.int_attribute("max_position_embeddings", &a.max_position_embeddings);
  reader.int_attribute("bos_token_id", &a.bos_token_id);
  reader.int_attribute("eos_token_id", &a.eos_token_id);
  reader.string_attribute("torch_dtype", &a.torch_dtype);
  reader.string_attribute("source", &a.source);
  reader.string_attribute("tokenizer", &a.tokenizer);
  return a;
}

}  // namespace rw::io
