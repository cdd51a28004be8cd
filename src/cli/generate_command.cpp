// generate_command.cpp: `ringworld generate`: text from a model on the ring of all ranks. The
// prompt is prefilled by the training ring attention (any layout, any length), each rank keeps
// its tokens' K/V as its shard of the KV cache, and decoding attends every shard in place and
// merges the partial results by log-sum-exp (src/infer/generator.h). Rank 0 samples (src/infer/
// sampling.h) and every rank follows its token. Tokens are printed as they come (stdout); the
// report (prefill tokens/s, decode ms/token, bytes moved per token, KV cache) goes to stderr.
#include <boost/program_options.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
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
#include "mpi/watchdog.h"
#include "src/cli/commands.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/cli/tokenizer_choice.h"
#include "src/common/input_error.h"
#include "src/common/llama_config.h"
#include "src/infer/chat_template.h"
#include "src/infer/generator.h"
#include "src/infer/sampling.h"
#include "src/plan/plan_report.h"
#include "src/train/fsdp_params.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

const char* kGenerateUsage =
    "usage: mpirun -np N ringworld generate --checkpoint CKPT.h5 (--prompt TEXT | --prompt-file FILE) [options]\n"
    "\n"
    "Generates text after the prompt with the model of CKPT.h5 (a checkpoint, or a parameter file from\n"
    "`ringworld import`). The prompt is prefilled on the ring of all ranks; each rank keeps the keys and\n"
    "values of its own tokens (its shard of the KV cache) and decoding never moves them: per new token\n"
    "and layer the ranks exchange heads x (head_dim + 1) floats. Any prompt length runs on any number\n"
    "of ranks. Every rank holds the whole model. The generated text goes to stdout as it comes; the\n"
    "timing report to stderr.\n"
    "Tokenizer: --tokenizer, else the one the checkpoint records (import records tokenizer.model).\n"
    "Sampling: greedy by default (--temperature 0); --seed makes sampled output repeatable, on any\n"
    "number of ranks.\n"
    "Exit status: 0 done, 1 bad model, tokenizer or file, 2 bad options.\n";

std::string read_prompt_file(const std::string& path) {
  io::check_input_file(path, "prompt file");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) throw InputError("cannot read prompt file '" + path + "'");
  return text.str();
}

}  // namespace

int run_generate(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string checkpoint, prompt, prompt_file, tokenizer_text, chat = "none", layout_text = "zigzag",
                                                                     device_name = "cpu", output;
  int64_t max_new_tokens = 128, max_context = 0;
  infer::SamplingOptions sampling;
  bool stop_at_eos = false, quiet = false;
  int block = 256;
  double timeout = 900;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")
      ("checkpoint", po::value(&checkpoint), "checkpoint or parameter file (HDF5)")
      ("prompt", po::value(&prompt), "the prompt text")
      ("prompt-file", po::value(&prompt_file), "read the prompt from this file (as is)")
      ("tokenizer", po::value(&tokenizer_text),
       "tokenizer.model (SentencePiece), byte, or passkey[:VOCAB]; default: the one the checkpoint records")
      ("chat", po::value(&chat)->default_value(chat), "prompt template: none | lwm (LWM's chat format; stops at EOS)")
      ("max-new-tokens", count(&max_new_tokens)->min(1)->default_value(max_new_tokens), "tokens to generate at most")
      ("max-context", count(&max_context)->min(0)->default_value(0),
       "refuse a prompt whose tokens plus --max-new-tokens exceed this (0: the model's max_position_embeddings "
       "when the file records it, else no limit)")
      ("temperature", number(&sampling.temperature)->min(0)->default_value(0), "0 = greedy")
      ("top-k", number(&sampling.top_k)->min(0)->default_value(0), "sample from the k most probable tokens (0: all)")
      ("top-p", number(&sampling.top_p)->default_value(1.0), "sample from the smallest set of mass >= p (1: all)")
      ("seed", number(&sampling.seed)->default_value(0), "seed of the sampling")
      ("stop-at-eos", po::bool_switch(&stop_at_eos), "stop at the tokenizer's (or the model's) end-of-sequence token")
      ("layout", po::value(&layout_text)->default_value(layout_text), "the prefill's ring layout: contiguous | striped | zigzag")
      ("block", count(&block)->min(1)->default_value(block), "the prefill's attention tile rows")
      ("device", po::value(&device_name)->default_value(device_name), device_option_help().c_str())
      ("output", po::value(&output), "also write the result as JSON (tokens, text, timings)")
      ("timeout", number(&timeout)->min(0)->default_value(timeout),
       "seconds a rank may go without progress before the watchdog reports where every rank is and ends the job (0: never)")
      ("quiet", po::bool_switch(&quiet), "print only the generated text");
  po::variables_map vm;
  Layout layout = Layout::zigzag;
  try {
    store_command_line(parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << kGenerateUsage << "\n" << desc << "\n";
      return 0;
    }
    if (checkpoint.empty()) throw InputError("--checkpoint is required");
    if (vm.count("prompt") + vm.count("prompt-file") != 1) throw InputError("give one of --prompt and --prompt-file");
    infer::validate_sampling_options(sampling);
    infer::chat_prompt_text(chat, "");  // validates the template's name
    layout = parse_layout(layout_text);
    if (!output.empty()) io::check_output_path(output);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld generate: error: %s (see ringworld generate --help)\n", e.what());
    return 2;
  }
  auto fail = [&](const std::string& message) {
    if (is_root) std::fprintf(stderr, "ringworld generate: error: %s\n", message.c_str());
    return 1;
  };

  // Everything a rank can get wrong on its own is checked before the first collective.
  std::string error;
  std::unique_ptr<device::Backend> backend;
  std::unique_ptr<data::Tokenizer> tokenizer;
  model::LlamaConfig config;
  infer::ChatPrompt chat_prompt;
  io::ImportedAttributes attributes;
  try {
    backend = device::make_backend(device_name);
    io::check_input_file(checkpoint, "checkpoint");
    config = io::read_model_config(checkpoint);
    attributes = io::read_imported_attributes(checkpoint);
    tokenizer = open_model_tokenizer(tokenizer_text, attributes.tokenizer, checkpoint, config.vocab_size);
    if (!prompt_file.empty()) prompt = read_prompt_file(prompt_file);
    chat_prompt = infer::apply_chat_template(chat, prompt, *tokenizer);
    if (chat_prompt.ids.empty()) throw InputError("the prompt is empty: it has no tokens");
    if (chat_prompt.stop_token < 0 && attributes.eos_token_id >= 0 && attributes.eos_token_id < config.vocab_size)
      chat_prompt.stop_token = static_cast<int32_t>(attributes.eos_token_id);
    const int64_t limit = max_context > 0 ? max_context : attributes.max_position_embeddings;
    const int64_t needed = static_cast<int64_t>(chat_prompt.ids.size()) + max_new_tokens;
    if (limit > 0 && needed > limit)
      throw InputError("the prompt's " + std::to_string(chat_prompt.ids.size()) + " tokens and --max-new-tokens " +
                       std::to_string(max_new_tokens) + " exceed the context limit of " + std::to_string(limit) +
                       (max_context > 0 ? " (--max-context)" : " (the model's max_position_embeddings; --max-context overrides)"));
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  const bool stop_enabled = (stop_at_eos || chat != "none") && chat_prompt.stop_token >= 0;

  mpi::ProcessGrid grid(1, mpi::world_size(), timeout > 0 ? 2 * timeout + 30 : 0);
  mpi::Watchdog watchdog(timeout);
  const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
  train::FsdpOptions fsdp;
  fsdp.gather_buffers = static_cast<int>(model::parameter_units(config).size());  // every unit stays gathered
  train::FsdpParams params(config, grid, exec, fsdp);
  try {
    io::read_param_shards(checkpoint, params);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);

  infer::GeneratorOptions options;
  options.layout = layout;
  options.tiling = {block, block};
  infer::Generator generator(config, params, grid, exec, options);
  infer::Sampler sampler(sampling);
  if (is_root && !quiet) {
    std::fprintf(stderr, "ringworld generate: %s on %d rank(s), prompt %zu tokens (%s layout), %s\n",
                 checkpoint.c_str(), grid.size(), chat_prompt.ids.size(), layout_name(layout).c_str(),
                 sampling.temperature > 0 ? "sampling" : "greedy");
  }
  std::vector<int32_t> generated;
  std::string printed, stop_reason = "max-new-tokens", sample_error;
  const std::vector<float>* logits = nullptr;
  try {  // the same prompt on every rank: every rank refuses it alike, before any collective
    logits = &generator.start(chat_prompt.ids, max_new_tokens);
  } catch (const InputError& e) {
    return fail(e.what());
  }
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    int32_t token = 0;
    if (is_root) {
      try {
        token = sampler.next(logits->data(), config.vocab_size);  // text out: the text head's columns
      } catch (const infer::NonFiniteLogits& e) {
        sample_error = e.what();
        token = -1;
      }
    }
    token = generator.agree_token(token);  // rank 0's choice (or -1: its error) on every rank
    if (token < 0) {
      if (is_root) std::fprintf(stderr, "ringworld generate: error: %s\n", sample_error.c_str());
      return 1;
    }
    if (stop_enabled && token == chat_prompt.stop_token) {
      stop_reason = "eos";
      break;
    }
    generated.push_back(token);
    if (is_root) {
      const std::string text = tokenizer->decode(generated);
      // Pieces can change how earlier bytes decode; print what extends what is already out.
      if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0) {
        std::fwrite(text.data() + printed.size(), 1, text.size() - printed.size(), stdout);
        std::fflush(stdout);
        printed = text;
      }
    }
    if (step + 1 < max_new_tokens) logits = &generator.append(token);
  }
  if (is_root) {
    const std::string text = tokenizer->decode(generated);
    if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0)
      std::fwrite(text.data() + printed.size(), 1, text.size() - printed.size(), stdout);
    std::printf("\n");
    std::fflush(stdout);
  }
  const infer::GenerationStats& st = generator.stats();
  const double prefill_s = mpi::allreduce_max(st.prefill_s);
  const double decode_s = mpi::allreduce_max(st.decode_s);
  const double bytes_per_token =
      mpi::allreduce_max(st.decode_steps ? static_cast<double>(st.decode_bytes_sent) / st.decode_steps : 0.0);
  const double cache_bytes = mpi::allreduce_max(static_cast<double>(st.kv_cache_bytes));
  if (!is_root) return 0;
  const double ms_per_token = st.decode_steps ? 1e3 * decode_s / st.decode_steps : 0.0;
  if (!quiet) {
    std::fprintf(stderr,
                 "ringworld generate: prefill %lld tokens in %.3f s (%.0f tokens/s; ring sequence %lld with padding); "
                 "decode %lld steps, %.2f ms/token; moved per token per rank %.0f bytes (%lld layers x one all-gather); "
                 "KV cache %s per rank (max); stop: %s\n",
                 static_cast<long long>(st.prefill_tokens), prefill_s, prefill_s > 0 ? st.prefill_tokens / prefill_s : 0.0,
                 static_cast<long long>(st.prefill_padded), static_cast<long long>(st.decode_steps), ms_per_token,
                 bytes_per_token, static_cast<long long>(config.num_hidden_layers), plan::format_bytes(cache_bytes).c_str(),
                 stop_reason.c_str());
  }
  if (!output.empty()) {
    nlohmann::json j;
    j["checkpoint"] = checkpoint;
    j["ranks"] = grid.size();
    j["layout"] = layout_name(layout);
    j["prompt_tokens"] = chat_prompt.ids;
    j["generated_tokens"] = generated;
    j["text"] = tokenizer->decode(generated);
    j["stop"] = stop_reason;
    j["prefill_s"] = prefill_s;
    j["decode_ms_per_token"] = ms_per_token;
    j["bytes_per_token"] = bytes_per_token;
    j["kv_cache_bytes_per_rank"] = cache_bytes;
    j["sampling"] = {{"temperature", sampling.temperature}, {"top_k", sampling.top_k}, {"top_p", sampling.top_p},
                     {"seed", sampling.seed}};
    try {
      io::write_text_file_atomically(output, j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    } catch (const InputError& e) {
      std::fprintf(stderr, "ringworld generate: error: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}

}  // namespace rw::cli
