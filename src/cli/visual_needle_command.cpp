// visual_needle_command.cpp: `ringworld eval visual-needle`: the vision demo's question over long
// synthetic videos (src/infer/visual_needle.h), answered by a vision-language checkpoint on the
// ring of all ranks; eval_command.cpp dispatches here. Prints the accuracy table, writes a CSV
// and (--answers) every prompt's answer as JSON lines.
#include "src/cli/visual_needle_command.h"

#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "device/backend.h"
#include "device/exec_context.h"
#include "io/attn_io.h"
#include "io/input_file.h"
#include "io/model_import.h"
#include "io/params_io.h"
#include "io/run_directory.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "src/cli/inference_model_loader.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/cli/tokenizer_choice.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/infer/generator.h"
#include "src/infer/needle_eval.h"
#include "src/infer/visual_needle.h"
#include "src/model/transformer.h"
#include "src/plan/plan_report.h"
#include "src/train/fsdp_params.h"
#include "src/vision/frame_encoder.h"
#include "src/vision/vqgan_weights.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

const char* kHelp =
    "usage: mpirun -np N ringworld eval visual-needle --checkpoint CKPT.h5 --vqgan VQ.h5 [options]\n"
    "\n"
    "The vision demo's visual needle (`make demo-vision`): for each video length (frames) x needle depth x trial,\n"
    "a seeded synthetic video (a light square moving on a dark background) holds in ONE frame a big square of one\n"
    "of 6 colours; the frames are encoded by the VQGAN the training data was made with (--vqgan) and laid out as\n"
    "`prepare --vision` lays out a caption example, then the question \"Q: what colour was the big square? A:\".\n"
    "The model (a vision-language checkpoint: vision_vocab_size > 0, trained on `vqgan demo-data` records)\n"
    "answers greedily from its text columns (at most --max-new-tokens, stopping after a '.'); an answer is\n"
    "right when it names the colour. Chance: 1/6. Depth 0 is the first frame (the farthest back), 100 the last.\n"
    "Prompts are prefilled on the ring and decoded with the KV cache sharded over the ranks, one at a time.\n"
    "Outputs: a table (rows: depths; columns: frames and prompt tokens), --csv\n"
    "(frames,prompt_tokens,depth,trials,correct,accuracy), --answers (one JSON line per prompt).\n"
    "Exit status: 0 done, 1 bad model, VQGAN or file, 2 bad options.\n";

void print_line(const std::string& line) {
  if (mpi::world_rank() == 0) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

}  // namespace

int run_eval_visual_needle(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string checkpoint, vqgan_path, frames_text = "16,64,128", depths_text = "0,25,50,75,100", csv, answers_path,
                                      layout_text = "zigzag", device_name = "cpu", tokenizer_text = "byte", title,
                                      precision_text = "fp32";
  infer::VisualNeedleOptions options;
  int block = 256;
  po::options_description desc("eval visual-needle options");
  desc.add_options()("help,h", "show this help")
      ("checkpoint", po::value(&checkpoint), "vision-language checkpoint or parameter file (HDF5)")
      ("vqgan", po::value(&vqgan_path), "the VQGAN weight file the training data was encoded with")
      ("tokenizer", po::value(&tokenizer_text)->default_value(tokenizer_text), "the training data's text tokenizer")
      ("frames", po::value(&frames_text)->default_value(frames_text), "video lengths in frames")
      ("depths", po::value(&depths_text)->default_value(depths_text), "needle depths in percent (0: the first frame)")
      ("trials", number(&options.trials)->min(1)->default_value(options.trials), "videos per (frames, depth)")
      ("seed", number(&options.seed)->default_value(options.seed), "seed of the evaluation videos")
      ("max-new-tokens", count(&options.max_new_tokens)->min(1)->default_value(options.max_new_tokens), "answer tokens at most")
      ("layout", po::value(&layout_text)->default_value(layout_text), "contiguous | striped | zigzag")
      ("block", count(&block)->min(1)->default_value(block), "attention tile rows")
      ("device", po::value(&device_name)->default_value(device_name), device_option_help().c_str())
      ("precision", precision_value(&precision_text), kInferencePrecisionHelp)
      ("csv", po::value(&csv), "write the accuracies here (CSV)")
      ("answers", po::value(&answers_path), "write every prompt's answer here (JSON lines)")
      ("title", po::value(&title), "the table's title");
  infer::GeneratorOptions generator_options;
  try {
    po::variables_map vm;
    store_command_line(parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kHelp << "\n" << desc << "\n";
      return 0;
    }
    if (checkpoint.empty() || vqgan_path.empty()) throw InputError("--checkpoint and --vqgan are required");
    for (int f : infer::parse_lengths(frames_text)) options.frames.push_back(f);
    options.depths = infer::parse_depths(depths_text);
    generator_options.layout = parse_layout(layout_text);
    generator_options.tiling = {block, block};
    generator_options.precision = model::parse_precision(precision_text);
    if (!csv.empty()) io::check_output_path(csv);
    if (!answers_path.empty()) io::check_output_path(answers_path);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld eval visual-needle: error: %s\n", e.what());
    return 2;
  }
  auto fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld eval visual-needle: error: %s\n", message.c_str());
    return 1;
  };

  // Everything a rank can get wrong on its own is checked before the first collective.
  std::string error;
  InferenceModel loaded;
  const model::LlamaConfig& config = loaded.config();
  std::unique_ptr<data::Tokenizer> tokenizer;
  vision::VqganWeights vqgan;
  vision::VisionVocab vocab;
  vision::VisionMarkers markers;
  try {
    loaded.open(checkpoint, device_name, generator_options.precision);
    if (config.vision_vocab_size <= 0)
      throw InputError("'" + checkpoint + "' is a text model (vision_vocab_size 0): visual-needle needs a vision-language model");
    tokenizer = open_model_tokenizer(tokenizer_text, "", checkpoint, config.vocab_size);
    if (tokenizer->vocab_size() != config.vocab_size)
      throw InputError("'" + checkpoint + "' has vocab_size " + std::to_string(config.vocab_size) + " but the tokenizer (" +
                       tokenizer->description() + ") has " + std::to_string(tokenizer->vocab_size()) +
                       " ids: vision ids start at the tokenizer's vocabulary, so they must agree");
    vqgan = vision::read_vqgan_weights(vqgan_path);
    vocab.text_vocab = config.vocab_size;
    vocab.codebook_size = vqgan.config.codebook_size;
    vocab.vision_vocab = config.vision_vocab_size;
    vision::check_vision_vocab(vocab);
    markers.begin = tokenizer->encode("<vision>");
    markers.end = tokenizer->encode("</vision>");
    markers.bos = tokenizer->bos_id();
    markers.eos = tokenizer->eos_id();
    vision::SyntheticVideoSpec probe;
    probe.frame_size = vqgan.config.image_size;
    vision::check_video_spec(probe);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  mpi::ProcessGrid grid(1, mpi::world_size());
  if (!(error = loaded.load_params(grid, /*resident=*/true)).empty()) return fail(error);  // weights stay gathered
  if (is_root) {
    std::printf("ringworld eval visual-needle: %s (vocab %lld text + %lld vision, rope_theta %g) on %d rank(s), %s; VQGAN %s "
                "(%lldx%lld frames, %lld codes a frame: %lld tokens a frame); %zu lengths x %zu depths x %d trials; "
                "chance %.3f\n",
                checkpoint.c_str(), static_cast<long long>(config.vocab_size), static_cast<long long>(config.vision_vocab_size),
                config.rope_theta, grid.size(), model::precision_name(generator_options.precision), vqgan_path.c_str(),
                static_cast<long long>(vqgan.config.image_size),
                static_cast<long long>(vqgan.config.image_size), static_cast<long long>(vqgan.config.codes_per_frame()),
                static_cast<long long>(vqgan.config.codes_per_frame() + 1), options.frames.size(), options.depths.size(),
                options.trials, 1.0 / vision::kNeedleColours);
    std::fflush(stdout);
  }
  const double t0 = wall_seconds();
  std::vector<infer::VisualNeedleCell> cells;
  std::vector<infer::VisualNeedleAnswer> answers;
  double kv_cache_bytes = 0;  // the largest KV cache of any prompt, max over ranks
  try {
    vision::FrameEncoder encoder(loaded.backend(), vqgan.config, vqgan.values, 16);
    infer::Generator generator(config, loaded.params(), grid, loaded.exec(), generator_options);
    // Failures inside (non-finite logits) happen on every rank alike.
    cells = infer::evaluate_visual_needles(generator, encoder, vocab, markers, *tokenizer, options, &answers, &print_line);
    kv_cache_bytes = mpi::allreduce_max(static_cast<double>(generator.peak_kv_cache_bytes()));
  } catch (const InputError& e) {
    return fail(e.what());
  }
  if (!is_root) return 0;
  std::printf("visual needle accuracy (%s, %d video(s) per cell, chance %.2f, %.1f s):\n%s",
              title.empty() ? checkpoint.c_str() : title.c_str(), options.trials, 1.0 / vision::kNeedleColours,
              wall_seconds() - t0, infer::visual_needle_table(cells).c_str());
  std::printf("  KV cache: %s per rank at most (%.0f bytes: the longest prompt's, %s)\n",
              plan::format_bytes(kv_cache_bytes).c_str(), kv_cache_bytes, model::precision_name(generator_options.precision));
  if (!answers.empty()) {
    std::string shown = answers[0].answer;  // printable ASCII; other bytes as '?'
    for (char& ch : shown)
      if (static_cast<unsigned char>(ch) < 32 || static_cast<unsigned char>(ch) > 126) ch = '?';
    std::printf("  e.g. %lld frames, needle (%s) in frame %lld: answer \"%s\"\n", static_cast<long long>(answers[0].frames),
                vision::needle_colour_name(answers[0].colour), static_cast<long long>(answers[0].needle_frame),
                shown.c_str());
  }
  try {
    if (!csv.empty()) {
      io::write_text_file_atomically(csv, infer::visual_needle_csv(cells));
      std::printf("  wrote %s\n", csv.c_str());
    }
    if (!answers_path.empty()) {
      io::write_text_file_atomically(answers_path, infer::visual_needle_answers_jsonl(answers, model::precision_name(generator_options.precision)));
      std::printf("  wrote %s (%zu answers)\n", answers_path.c_str(), answers.size());
    }
  } catch (const InputError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ringworld eval visual-needle: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace rw::cli
