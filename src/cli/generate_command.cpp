// generate_command.cpp: `ringworld generate`: text from a model on the ring of all ranks. The
// prompt is prefilled by the training ring attention (any layout, any length), each rank keeps
// its tokens' K/V as its shard of the KV cache, and decoding attends every shard in place and
// merges the partial results by log-sum-exp (src/infer/generator.h). Rank 0 samples (src/infer/
// sampling.h) and every rank follows its token. Tokens are printed as they come (stdout); the
// report (prefill tokens/s, decode ms/token, bytes moved per token, KV cache) goes to stderr.
// A vision model (LWM) also takes images and videos in the prompt (--image, --video, --codes:
// vision blocks in the chat template, text out from the text columns) and generates images and
// videos (--output-vision: classifier-free guidance of two sequences, src/infer/
// vision_generation.h; the codes decoded by the VQGAN, src/cli/generate_vision.h).
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
#include "src/cli/generate_vision.h"
#include "src/cli/inference_model_loader.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/cli/tokenizer_choice.h"
#include "src/common/input_error.h"
#include "src/common/llama_config.h"
#include "src/infer/chat_template.h"
#include "src/infer/generator.h"
#include "src/infer/sampling.h"
#include "src/infer/vision_generation.h"
#include "src/vision/vision_sequence.h"
#include "src/vision/vqgan_weights.h"
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
    "Vision (a model with a vision vocabulary, LWM's):\n"
    "  in:  --image FILE (repeatable) or --video FILE|DIR (at most --max-frames, uniformly chosen),\n"
    "       encoded by --vqgan VQ.h5 in this run, or --codes CODES.h5 (`ringworld vqgan encode`): vision\n"
    "       blocks in the prompt (--chat lwm: LWM's vision chat), text out.\n"
    "  out: --output-vision image|video --vqgan VQ.h5 --vision-output DIR|FILE.gif|FILE.mp4: the prompt\n"
    "       as a picture or --frames N frames, classifier-free guidance (logits u + s (c - u), s =\n"
    "       --cfg-scale) of the prompt and of \"<vision>\" alone; LWM's defaults: image s 5, top-k 8192;\n"
    "       video s 1, top-k 1000; temperature 1.\n"
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
  std::string precision_text = "fp32";
  model::Precision precision = model::Precision::fp32;
  int64_t max_new_tokens = 128, max_context = 0;
  infer::SamplingOptions sampling;
  bool stop_at_eos = false, quiet = false;
  std::vector<std::string> images;
  std::string video, codes_path, vqgan_path, output_vision, vision_output, format;
  double fps = 0, cfg_scale = 0;
  int64_t max_frames = 8, frames = 1;
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
      ("precision", precision_value(&precision_text), kInferencePrecisionHelp)
      ("output", po::value(&output), "also write the result as JSON (tokens, text, timings)")
      ("timeout", number(&timeout)->min(0)->default_value(timeout),
       "seconds a rank may go without progress before the watchdog reports where every rank is and ends the job (0: never)")
      ("quiet", po::bool_switch(&quiet), "print only the generated text")
      ("image", po::value(&images), "vision in: an image (PNG, JPEG) in the prompt, one vision block each (repeatable); needs --vqgan")
      ("video", po::value(&video), "vision in: a video file or a directory of frames, one vision block; needs --vqgan")
      ("codes", po::value(&codes_path), "vision in: the frames of CODES.h5 (ringworld vqgan encode) as one vision block")
      ("max-frames", count(&max_frames)->min(1)->default_value(max_frames),
       "--video, --codes: at most this many frames, uniformly chosen (LWM: 8)")
      ("vqgan", po::value(&vqgan_path), "VQGAN weights (ringworld import --from diffusers-vq | lwm-vqgan): encodes --image and "
       "--video, decodes --output-vision")
      ("output-vision", po::value(&output_vision), "image | video: generate vision from the prompt instead of text")
      ("frames", count(&frames)->min(1), "--output-vision video: frames to generate (default 8)")
      ("cfg-scale", po::value(&cfg_scale), "--output-vision: guidance scale s, logits u + s (c - u) (default 5 for an image, "
       "1 for a video; 1: the prompt alone)")
      ("vision-output", po::value(&vision_output), "--output-vision: a directory (PNG frames), FILE.gif or FILE.mp4")
      ("format", po::value(&format), "--vision-output's format: png | gif | mp4 (default: from its name)")
      ("fps", po::value(&fps), "--video: sample a video file at this rate (default: every frame); --output-vision: the GIF's "
       "or MP4's frame rate (default 4)");
  po::variables_map vm;
  Layout layout = Layout::zigzag;
  bool vision_prompt = false, vision_out = false;
  infer::VisionGenerationOptions vision_options;
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
    precision = model::parse_precision(precision_text);
    if (!output.empty()) io::check_output_path(output);
    vision_prompt = !images.empty() || !video.empty() || !codes_path.empty();
    vision_out = vm.count("output-vision") > 0;
    if ((!images.empty() || !video.empty()) + !codes_path.empty() > 1 || (!images.empty() && !video.empty()))
      throw InputError("give one of --image (repeatable), --video and --codes");
    if (vision_out && output_vision != "image" && output_vision != "video")
      throw InputError("--output-vision must be image or video (got '" + output_vision + "')");
    if (vision_out && vision_prompt)
      throw InputError("--output-vision generates vision from text: --image, --video and --codes do not apply");
    if ((!images.empty() || !video.empty() || vision_out) && vqgan_path.empty())
      throw InputError(vision_out ? "--output-vision needs --vqgan VQ.h5 to decode the codes it generates"
                                  : "--image and --video need --vqgan VQ.h5 to encode them (or give --codes CODES.h5 from "
                                    "`ringworld vqgan encode`)");
    if (vision_out && vision_output.empty()) throw InputError("--output-vision needs --vision-output DIR|FILE.gif|FILE.mp4");
    if (!vision_out) {
      for (const char* o : {"frames", "cfg-scale", "vision-output", "format"})
        if (vm.count(o)) throw InputError(std::string("--") + o + " is for --output-vision");
    }
    if (vm.count("fps") && !(fps > 0 && fps <= 1000)) throw InputError("--fps must be in (0, 1000]");
    if (vm.count("fps") && !vision_out && video.empty()) throw InputError("--fps is for --video and --output-vision");
    if (vision_out) {
      if (output_vision == "image" && vm.count("frames") && frames != 1)
        throw InputError("--output-vision image makes one frame (--frames is for video)");
      if (output_vision == "video" && !vm.count("frames")) frames = 8;
      format = vision_output_format(vision_output, format);
      if (format != "png") io::check_output_path(vision_output);
      if (fps == 0) fps = 4;
      vision_options = infer::lwm_vision_generation_defaults(frames, 1);
      if (vm.count("cfg-scale")) vision_options.cfg_scale = cfg_scale;
      if (!vm["temperature"].defaulted()) vision_options.sampling.temperature = sampling.temperature;
      if (!vm["top-k"].defaulted()) vision_options.sampling.top_k = sampling.top_k;
      vision_options.sampling.top_p = sampling.top_p;
      vision_options.sampling.seed = sampling.seed;
      vision::VisionVocab probe{1, 1, 3};  // the model's vocabulary is checked once it is read
      infer::validate_vision_generation(vision_options, probe);
    }
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
  InferenceModel loaded;
  const model::LlamaConfig& config = loaded.config();
  std::unique_ptr<data::Tokenizer> tokenizer;
  infer::ChatPrompt chat_prompt;
  io::ImportedAttributes attributes;
  vision::VqganWeights vqgan;
  PromptVision prompt_vision;
  try {
    loaded.open(checkpoint, device_name, precision);
    attributes = io::read_imported_attributes(checkpoint);
    tokenizer = open_model_tokenizer(tokenizer_text, attributes.tokenizer, checkpoint, config.vocab_size);
    if (!prompt_file.empty()) prompt = read_prompt_file(prompt_file);
    if ((vision_prompt || vision_out) && !config.has_vision())
      throw InputError("'" + checkpoint + "' is a text-only model (no vision vocabulary): " +
                       (vision_out ? "--output-vision" : "vision in the prompt") + " needs a vision model (vision_vocab_size > 0)");
    if (!vqgan_path.empty()) {
      io::check_input_file(vqgan_path, "VQGAN weights");
      vqgan = vision::read_vqgan_weights(vqgan_path);
    }
    if (!codes_path.empty()) io::check_input_file(codes_path, "codes file");
    // Vision in from images and videos: every rank encodes every frame (a prompt holds a few).
    if (!images.empty() || !video.empty())
      prompt_vision = encode_prompt_frames(loaded.backend(), vqgan, images, video, fps, max_frames);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  if (!codes_path.empty()) {  // collective: every rank reads the file
    try {
      prompt_vision = read_prompt_codes(codes_path, max_frames, vqgan_path.empty() ? nullptr : &vqgan.config);
    } catch (const InputError& e) {
      error = e.what();
    }
    if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  }
  vision::VisionVocab vocab;
  infer::VisionGenerationPrompts vision_prompts;
  try {
    int64_t new_tokens = max_new_tokens;
    if (vision_prompt || vision_out) {
      vocab.text_vocab = config.vocab_size;
      vocab.vision_vocab = config.vision_vocab_size;
      vocab.codebook_size = vision_out ? vqgan.config.codebook_size : prompt_vision.codebook_size;
      if (vocab.codebook_size + 2 > vocab.vision_vocab)
        throw InputError("the VQGAN's codebook of " + std::to_string(vocab.codebook_size) + " codes (and <eof>, <eov>) does not "
                         "fit the model's vision vocabulary of " + std::to_string(vocab.vision_vocab));
    }
    if (vision_out) {
      vision_options.codes_per_frame = vqgan.config.codes_per_frame();
      infer::validate_vision_generation(vision_options, vocab);
      vision_prompts = infer::vision_generation_prompts(chat, prompt, output_vision == "video", *tokenizer);
      chat_prompt.ids = vision_prompts.cond;
      new_tokens = infer::vision_generation_tokens(vision_options.frames, vision_options.codes_per_frame);
    } else if (vision_prompt) {
      const vision::VisionMarkers markers = infer::vision_markers(*tokenizer);
      std::vector<int32_t> blocks;
      for (const std::vector<int32_t>& codes : prompt_vision.blocks) {
        const std::vector<int32_t> block = vision::vision_block(vocab, markers, codes, prompt_vision.codes_per_frame);
        blocks.insert(blocks.end(), block.begin(), block.end());
      }
      chat_prompt = infer::apply_vision_chat_template(chat, prompt, blocks, *tokenizer);
    } else {
      chat_prompt = infer::apply_chat_template(chat, prompt, *tokenizer);
    }
    if (chat_prompt.ids.empty()) throw InputError("the prompt is empty: it has no tokens");
    if (chat_prompt.stop_token < 0 && attributes.eos_token_id >= 0 && attributes.eos_token_id < config.vocab_size)
      chat_prompt.stop_token = static_cast<int32_t>(attributes.eos_token_id);
    const int64_t limit = max_context > 0 ? max_context : attributes.max_position_embeddings;
    const int64_t needed = static_cast<int64_t>(chat_prompt.ids.size()) + new_tokens;
    if (limit > 0 && needed > limit)
      throw InputError("the prompt's " + std::to_string(chat_prompt.ids.size()) + " tokens and " +
                       (vision_out ? "the " + std::to_string(new_tokens) + " vision tokens"
                                   : "--max-new-tokens " + std::to_string(max_new_tokens)) +
                       " exceed the context limit of " + std::to_string(limit) +
                       (max_context > 0 ? " (--max-context)" : " (the model's max_position_embeddings; --max-context overrides)"));
  } catch (const InputError& e) {
    error = e.what();
  }
  if (!(error = mpi::agree_on_error(error)).empty()) return fail(error);
  const bool stop_enabled = (stop_at_eos || chat != "none") && chat_prompt.stop_token >= 0;

  mpi::ProcessGrid grid(1, mpi::world_size(), timeout > 0 ? 2 * timeout + 30 : 0);
  mpi::Watchdog watchdog(timeout);
  if (!(error = loaded.load_params(grid, /*resident=*/true)).empty()) return fail(error);
  const device::ExecContext& exec = loaded.exec();
  train::FsdpParams& params = loaded.params();

  infer::GeneratorOptions options;
  options.layout = layout;
  options.tiling = {block, block};
  options.precision = precision;
  infer::Generator generator(config, params, grid, exec, options);
  if (vision_out) {
    // Classifier-free guidance: the prompt and "<vision>" alone, two sequences (each with its
    // own KV cache on the ring) decoded in lockstep; every rank makes the same calls.
    infer::Generator unconditional(config, params, grid, exec, options);
    const int64_t total = infer::vision_generation_tokens(vision_options.frames, vision_options.codes_per_frame);
    if (is_root && !quiet)
      std::fprintf(stderr,
                   "ringworld generate: %s on %d rank(s): %s of %lld frame(s) x %lld codes (%lld tokens), cfg-scale %g, "
                   "temperature %g, top-k %d; prompt %zu tokens, unconditional %zu\n",
                   checkpoint.c_str(), grid.size(), output_vision.c_str(), static_cast<long long>(vision_options.frames),
                   static_cast<long long>(vision_options.codes_per_frame), static_cast<long long>(total),
                   vision_options.cfg_scale, vision_options.sampling.temperature, vision_options.sampling.top_k,
                   vision_prompts.cond.size(), vision_prompts.uncond.size());
    infer::GeneratorStream cond_stream(generator), uncond_stream(unconditional);
    infer::VisionGenerationResult result;
    try {  // start() refuses a prompt alike on every rank; non-finite logits throw on every rank
      result = infer::generate_vision(cond_stream, uncond_stream, vision_prompts.cond, vision_prompts.uncond, vocab,
                                      vision_options, [&](int32_t t) { return generator.agree_token(t); }, is_root);
    } catch (const std::runtime_error& e) {
      return fail(e.what());
    }
    error = write_generated_frames(loaded.backend(), vqgan, result.codes, vision_options.frames, vision_output, format, fps);
    if (!error.empty()) return fail(error);
    const double prefill_s = mpi::allreduce_max(generator.stats().prefill_s + unconditional.stats().prefill_s);
    const double decode_s = mpi::allreduce_max(generator.stats().decode_s + unconditional.stats().decode_s);
    if (!is_root) return 0;
    const double ms_per_token = total > 1 ? 1e3 * decode_s / static_cast<double>(total - 1) : 0.0;
    if (!quiet)
      std::fprintf(stderr, "ringworld generate: wrote %lld frame(s) to %s (%s); prefill %.3f s, decode %.2f ms per vision token "
                   "(both sequences)\n", static_cast<long long>(vision_options.frames), vision_output.c_str(), format.c_str(),
                   prefill_s, ms_per_token);
    if (!output.empty()) {
      nlohmann::json j;
      j["checkpoint"] = checkpoint;
      j["ranks"] = grid.size();
      j["layout"] = layout_name(layout);
      j["output_vision"] = output_vision;
      j["prompt_tokens"] = vision_prompts.cond;
      j["unconditional_tokens"] = vision_prompts.uncond;
      j["generated_tokens"] = result.tokens;
      j["codes"] = result.codes;
      j["frames"] = vision_options.frames;
      j["codes_per_frame"] = vision_options.codes_per_frame;
      j["cfg_scale"] = vision_options.cfg_scale;
      j["vision_output"] = vision_output;
      j["format"] = format;
      j["prefill_s"] = prefill_s;
      j["decode_ms_per_token"] = ms_per_token;
      j["sampling"] = {{"temperature", vision_options.sampling.temperature}, {"top_k", vision_options.sampling.top_k},
                       {"top_p", vision_options.sampling.top_p}, {"seed", vision_options.sampling.seed}};
      try {
        io::write_text_file_atomically(output, j.dump(1) + "\n");
      } catch (const InputError& e) {
        std::fprintf(stderr, "ringworld generate: error: %s\n", e.what());
        return 1;
      }
    }
    return 0;
  }
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
                 "KV cache %s per rank (max, %s); stop: %s\n",
                 static_cast<long long>(st.prefill_tokens), prefill_s, prefill_s > 0 ? st.prefill_tokens / prefill_s : 0.0,
                 static_cast<long long>(st.prefill_padded), static_cast<long long>(st.decode_steps), ms_per_token,
                 bytes_per_token, static_cast<long long>(config.num_hidden_layers), plan::format_bytes(cache_bytes).c_str(),
                 model::precision_name(precision), stop_reason.c_str());
  }
  if (!output.empty()) {
    nlohmann::json j;
    j["checkpoint"] = checkpoint;
    j["ranks"] = grid.size();
    j["layout"] = layout_name(layout);
    j["precision"] = model::precision_name(precision);
    j["prompt_tokens"] = chat_prompt.ids;
    if (vision_prompt) j["vision_frames"] = prompt_vision.frames;
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
