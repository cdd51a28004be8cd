// eval_command.cpp: `ringworld eval needle`: needle-in-a-haystack accuracy of a checkpoint (or a
// parameter file) over context lengths x needle depths, on the ring of all ranks. --mode forced
// (teacher-forced, the passkey task: needle_eval.h) or generate (answers decoded by the
// Generator: the passkey task, or LWM's protocol on the user's text with --haystack:
// needle_generate.h). Prints a text heatmap, writes a CSV, a PNG heatmap (when gnuplot is
// installed) and the answers as JSON lines (needle_report.h). `eval visual-needle` (the vision
// demo) lives in visual_needle_command.cpp.
#include <boost/program_options.hpp>

#include <algorithm>
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
#include "src/attention/attention_ops.h"
#include "src/cli/commands.h"
#include "src/cli/inference_model_loader.h"
#include "src/cli/needle_report.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/cli/tokenizer_choice.h"
#include "src/cli/visual_needle_command.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/infer/generator.h"
#include "src/infer/needle_eval.h"
#include "src/infer/needle_generate.h"
#include "src/infer/needle_haystack.h"
#include "src/infer/needle_prompt.h"
#include "src/model/transformer.h"
#include "src/plan/plan_report.h"
#include "src/train/fsdp_params.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

void reduce_over_grid(std::vector<double>& values, void* grid) {
  static_cast<mpi::ProcessGrid*>(grid)->allreduce_sum(values.data(), static_cast<int>(values.size()));
}

void print_progress(const std::string& line) {
  if (mpi::world_rank() == 0) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

const char* kEvalUsage =
    "usage: mpirun -np N ringworld eval MODE [options]\n"
    "\n"
    "modes:\n"
    "  needle   passkey retrieval accuracy over context lengths x needle depths (text heatmap, CSV, PNG)\n"
    "  visual-needle  a vision-language model's answer about long synthetic videos (the vision demo)\n"
    "\n"
    "`ringworld eval needle --help` describes its options.\n";

const char* kNeedleHelp =
    "usage: mpirun -np N ringworld eval needle --checkpoint CKPT.h5 [--mode forced|generate] [options]\n"
    "\n"
    "Needle-in-a-haystack retrieval over context lengths x needle depths x trials, on the ring of all ranks.\n"
    "Tasks:\n"
    "  passkey (no --haystack): the built-in task of `train --data synthetic:passkey`: each document hides a\n"
    "    needle (<key> NAME <is> digits) at a depth of a filler text and asks for it at the end (<ask> NAME\n"
    "    <is>). The model must have been trained on it (its token ids are the task's own language,\n"
    "    vocabulary >= 64). A document counts when every digit is right.\n"
    "  text (--haystack FILE...): LWM's protocol: the needle \"The special magic {city} number is: {7 digits}\"\n"
    "    at a depth of the files' text (plain text, .jsonl \"text\" fields, or token datasets of the same\n"
    "    tokenizer), LWM's question and prompt template, in the model's tokenizer (--tokenizer, else the\n"
    "    one the checkpoint records); a needle is found when its number appears in the decoded answer\n"
    "    (--max-new-tokens, stopping at EOS). --needles N --ask R: N needles, R asked, a hit per asked one.\n"
    "    A length is the prompt's tokens (at most, as close as the tokenizer allows).\n"
    "Modes:\n"
    "  forced (the default for the passkey task, as before): one forward per length over the ring; a digit\n"
    "    is right when it is the model's argmax given the true prefix (teacher forcing). Lengths must\n"
    "    divide over the ring (by 2N for zigzag).\n"
    "  generate (the default, and the only mode, with --haystack): each prompt is prefilled on the ring and\n"
    "    its answer decoded greedily with the KV cache sharded over the ranks (as `ringworld generate`).\n"
    "    Prompts run one at a time (sequences are not batched): a cell costs trials x (one prefill of the\n"
    "    length + one decode step per answer token), far more than the forced mode's share of one batched\n"
    "    forward. On the passkey task both modes count the same documents. Any length runs on any ring.\n"
    "Outputs: a text heatmap, --csv (length,depth,trials,correct,accuracy; with --ask R on text, trials are\n"
    "prompts x R needles), --png (gnuplot), --answers (one JSON line per prompt), --show N (the first N\n"
    "prompts' last tokens and answers).\n"
    "Lengths take K/M suffixes.\n"
    "Exit status: 0 done, 1 bad model, tokenizer or file, 2 bad options.\n";

}  // namespace

int run_eval(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  if (argc < 2) {
    if (is_root) std::fprintf(stderr, "ringworld eval: error: missing mode (needle)\n%s", kEvalUsage);
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "--help" || mode == "-h" || mode == "help") {
    if (is_root) std::fputs(kEvalUsage, stdout);
    return 0;
  }
  if (mode == "visual-needle") return run_eval_visual_needle(argc - 1, argv + 1);
  if (mode != "needle") {
    if (is_root)
      std::fprintf(stderr, "ringworld eval: error: unknown eval mode '%s'%s\n%s", mode.c_str(),
                   did_you_mean(mode, {"needle", "visual-needle"}).c_str(), kEvalUsage);
    return 2;
  }
  std::string checkpoint, lengths_text = "512,1K,2K,4K,8K", depths_text = "0,25,50,75,100", csv, png, layout_text = "zigzag",
                          title, device_name = "cpu", mode_text, tokenizer_text, answers_path, precision_text = "fp32";
  std::vector<std::string> haystack_paths;
  infer::NeedleEvalOptions options;
  int64_t max_new_tokens = 32;
  int block = 256, show = 0;
  po::options_description desc("eval needle options");
  desc.add_options()("help,h", "show this help")
      ("checkpoint", po::value(&checkpoint), "checkpoint or parameter file (HDF5)")
      ("mode", po::value(&mode_text), "forced | generate (default: forced for the passkey task, generate with --haystack)")
      ("haystack", po::value(&haystack_paths)->multitoken(),
       "text task: haystack files (text, .jsonl, token datasets, directories)")
      ("tokenizer", po::value(&tokenizer_text),
       "text task: tokenizer.model (SentencePiece), byte; default: the one the checkpoint records")
      ("max-new-tokens", count(&max_new_tokens)->min(1)->default_value(max_new_tokens),
       "text task: answer tokens to decode at most (stops at EOS)")
      ("lengths", po::value(&lengths_text)->default_value(lengths_text), "context lengths (K = 1024)")
      ("depths", po::value(&depths_text)->default_value(depths_text), "needle depths in percent")
      ("trials", number(&options.trials)->min(1)->default_value(options.trials), "documents per (length, depth)")
      ("needles", number(&options.passkey.needles)->min(1)->max(data::PasskeyVocab::kNames)->default_value(1),
       "needles per document")
      ("ask", number(&options.passkey.asked)->min(1)->max(data::PasskeyVocab::kNames)->default_value(1),
       "needles asked for (at most --needles)")
      ("digits", number(&options.passkey.digits)->min(1)->max(1000)->default_value(options.passkey.digits),
       "passkey task: digits per answer")
      ("seed", number(&options.seed)->default_value(options.seed), "seed of the evaluation documents")
      ("layout", po::value(&layout_text)->default_value(layout_text), "contiguous | striped | zigzag")
      ("block", count(&block)->min(1)->default_value(block), "attention tile rows")
      ("device", po::value(&device_name)->default_value(device_name), device_option_help().c_str())
      ("precision", precision_value(&precision_text), kInferencePrecisionHelp)
      ("csv", po::value(&csv), "write the accuracies here (CSV)")
      ("png", po::value(&png), "write a heatmap here (PNG, needs gnuplot)")
      ("answers", po::value(&answers_path), "write every prompt's answer here (JSON lines)")
      ("show", count(&show)->min(0)->default_value(0), "print the first N prompts' last tokens and their answers")
      ("title", po::value(&title), "title of the heatmap");
  po::variables_map vm;
  bool generate = false, text_task = false;
  model::Precision precision = model::Precision::fp32;
  try {
    store_command_line(parse_command_line(argc - 1, argv + 1, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kNeedleHelp << "\n" << desc << "\n";
      return 0;
    }
    if (checkpoint.empty()) throw InputError("--checkpoint is required");
    text_task = vm.count("haystack") > 0;
    if (text_task && haystack_paths.empty()) throw InputError("--haystack needs at least one file");
    if (mode_text.empty()) mode_text = text_task ? "generate" : "forced";
    if (mode_text != "forced" && mode_text != "generate")
      throw InputError("unknown --mode '" + mode_text + "' (forced or generate)" +
                       did_you_mean(mode_text, {"forced", "generate"}));
    generate = mode_text == "generate";
    if (text_task && !generate)
      throw InputError("--haystack (LWM's text task) is scored by generation: use --mode generate, not forced");
    if (!text_task) {
      if (vm.count("tokenizer")) throw InputError("--tokenizer is for the text task (--haystack); the passkey task has its own ids");
      if (!vm["max-new-tokens"].defaulted())
        throw InputError("--max-new-tokens is for the text task (--haystack); the passkey task decodes --digits per question");
    } else if (!vm["digits"].defaulted()) {
      throw InputError("--digits is for the passkey task; the text task's numbers have 7 digits");
    }
    options.lengths = infer::parse_lengths(lengths_text);
    options.depths = infer::parse_depths(depths_text);
    options.layout = parse_layout(layout_text);
    precision = model::parse_precision(precision_text);
    if (options.passkey.asked > options.passkey.needles)
      throw InputError("--ask (" + std::to_string(options.passkey.asked) + ") must be at most --needles (" +
                       std::to_string(options.passkey.needles) + ")");
    if (!generate)
      for (int length : options.lengths) check_ring_split(options.layout, length, mpi::world_size());
    if (!csv.empty()) io::check_output_path(csv);
    if (!png.empty()) io::check_output_path(png);
    if (!answers_path.empty()) io::check_output_path(answers_path);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld eval needle: error: %s\n", e.what());
    return 2;
  }
  auto fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld eval needle: error: %s\n", message.c_str());
    return 1;
  };

  // Everything a rank can get wrong on its own is checked before the first collective.
  std::string error;
  InferenceModel loaded;
  const model::LlamaConfig& config = loaded.config();
  std::unique_ptr<data::Tokenizer> tokenizer;
  std::vector<int32_t> haystack;
  infer::NeedleTextOptions text;
  try {
    loaded.open(checkpoint, device_name, precision);
    if (text_task) {
      const io::ImportedAttributes attributes = io::read_imported_attributes(checkpoint);
      tokenizer = open_model_tokenizer(tokenizer_text, attributes.tokenizer, checkpoint, config.vocab_size);
      text.lengths = options.lengths;
      text.depths = options.depths;
      text.trials = options.trials;
      text.seed = options.seed;
      text.needles = options.passkey.needles;
      text.asked = options.passkey.asked;
      text.max_new_tokens = max_new_tokens;
      text.stop_token = tokenizer->eos_id();
      if (text.stop_token < 0 && attributes.eos_token_id >= 0 && attributes.eos_token_id < config.vocab_size)
        text.stop_token = static_cast<int32_t>(attributes.eos_token_id);
      const int shortest = *std::min_element(options.lengths.begin(), options.lengths.end());
      const int longest = *std::max_element(options.lengths.begin(), options.lengths.end());
      haystack = infer::read_haystack(haystack_paths, *tokenizer, longest);
      // The shortest length must hold the template, question and needles (a task of the grid).
      infer::build_needle_prompt(infer::draw_needle_task(text.needles, text.asked, options.depths[0], text.seed,
                                                         infer::needle_task_index(shortest, 0, text.trials, 0)),
                                 haystack, *tokenizer, shortest);
    } else {
      if (config.vocab_size < data::PasskeyVocab::kMinVocab)
        throw InputError("'" + checkpoint + "' has vocab_size " + std::to_string(config.vocab_size) +
                         ": eval needle's passkey task needs at least " + std::to_string(data::PasskeyVocab::kMinVocab) +
                         " token ids (it evaluates models trained with --data synthetic:passkey); no accuracy to report");
      options.passkey.vocab_size = static_cast<int>(config.vocab_size);
      for (int length : options.lengths) data::make_passkey_document(options.passkey, length, 0, 0, 0);  // validates
    }
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  mpi::ProcessGrid grid(1, mpi::world_size());
  // Generation keeps the weights gathered; the forced mode gathers each unit as training does.
  if (!(error = loaded.load_params(grid, /*resident=*/generate)).empty()) return fail(error);
  const device::ExecContext& exec = loaded.exec();
  train::FsdpParams& params = loaded.params();
  if (is_root) {
    std::printf("ringworld eval needle: %s (rope_theta %g) on %d rank(s), %s; %s task, %s mode; %zu lengths x %zu depths x "
                "%d trials\n",
                checkpoint.c_str(), config.rope_theta, grid.size(), model::precision_name(precision),
                text_task ? "text" : "passkey", mode_text.c_str(), options.lengths.size(), options.depths.size(),
                options.trials);
    if (text_task)
      std::printf("  haystack: %zu tokens of %s (from %zu path(s)); needles %d, asked %d; answers of at most %lld tokens%s\n",
                  haystack.size(), tokenizer->description().c_str(), haystack_paths.size(), text.needles, text.asked,
                  static_cast<long long>(text.max_new_tokens), text.stop_token >= 0 ? ", stop at EOS" : "");
    std::fflush(stdout);
  }
  const double t0 = wall_seconds();
  std::vector<infer::NeedleCell> cells;
  std::vector<infer::NeedleAnswer> answers;
  std::vector<infer::NeedleAnswer>* keep = (!answers_path.empty() || show > 0) ? &answers : nullptr;
  double kv_cache_bytes = 0;  // generation: the largest KV cache of any prompt, max over ranks
  if (!generate) {
    RingOptions ring_options;
    ring_options.causal = true;
    ring_options.tiling = {block, block};
    RingAttentionOp attention(exec, grid.ring(), ring_options);
    model::TransformerOptions transformer_options;
    transformer_options.precision = precision;
    model::Transformer model(config, params, attention, exec, transformer_options);
    cells = infer::evaluate_needles(model, options, grid.sp(), grid.sp_rank(), &reduce_over_grid, &grid,
                                    &print_progress, keep);
  } else {
    infer::GeneratorOptions generator_options;
    generator_options.layout = options.layout;
    generator_options.tiling = {block, block};
    generator_options.precision = precision;
    infer::Generator generator(config, params, grid, exec, generator_options);
    // Failures inside (a prompt that cannot be built, non-finite logits) happen on every rank alike.
    try {
      cells = text_task ? infer::generate_text_needles(generator, text, haystack, *tokenizer, keep, &print_progress)
                        : infer::generate_passkey_needles(generator, options, keep, &print_progress);
    } catch (const std::exception& e) {
      return fail(e.what());
    }
    kv_cache_bytes = mpi::allreduce_max(static_cast<double>(generator.peak_kv_cache_bytes()));
  }
  if (!is_root) return 0;
  std::printf("needle accuracy (%s, %s mode, %d trial(s) per cell, %.1f s):\n%s",
              title.empty() ? checkpoint.c_str() : title.c_str(), mode_text.c_str(), options.trials,
              wall_seconds() - t0, infer::needle_table(cells).c_str());
  if (generate)
    std::printf("  KV cache: %s per rank at most (%.0f bytes: the longest prompt's, %s)\n",
                plan::format_bytes(kv_cache_bytes).c_str(), kv_cache_bytes, model::precision_name(precision));
  if (show > 0) std::printf("%s", needle_show_text(answers, show).c_str());
  try {
    if (!csv.empty()) {
      write_needle_csv(csv, cells);
      std::printf("  wrote %s\n", csv.c_str());
    }
    if (!png.empty())
      std::printf("  %s\n", write_needle_png(png, cells, options.lengths, options.depths, title).c_str());
    if (!answers_path.empty()) {
      io::write_text_file_atomically(answers_path,
                                     needle_answers_jsonl(answers, mode_text, text_task, model::precision_name(precision)));
      std::printf("  wrote %s (%zu answers)\n", answers_path.c_str(), answers.size());
    }
  } catch (const InputError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ringworld eval needle: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace rw::cli
