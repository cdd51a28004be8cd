// prepare_vision.cpp: see prepare_vision.h. Rank 0 reads the records in order and writes one
// document per record and order (two with --vision-task both); a record's frames are encoded
// as the record is read (--vqgan) or looked up (--codes). CODES.h5 is read collectively first
// (the codes reader is collective), every rank taking part, rank 0 keeping all frames.
#include "src/cli/prepare_vision.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <unordered_map>

#include "device/backend.h"
#include "io/attn_io.h"
#include "io/frame_directory.h"
#include "io/image_file.h"
#include "io/input_file.h"
#include "io/token_dataset.h"
#include "io/vqgan_codes.h"
#include "mpi/runtime.h"
#include "src/cli/vision_inputs.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/text_input.h"
#include "src/data/tokenizer.h"
#include "src/data/vision_record.h"
#include "src/vision/frame_encoder.h"
#include "src/vision/frame_preprocess.h"
#include "src/vision/vision_sequence.h"
#include "src/vision/vqgan_weights.h"

namespace fs = std::filesystem;

namespace rw::cli {
namespace {

// The key a frame is looked up by: its source name with the path made absolute and normal, so
// "data/a.png" given to `vqgan encode` finds "a.png" in data/records.jsonl.
std::string source_key(const std::string& source) { return fs::absolute(fs::path(source)).lexically_normal().string(); }

// Frames of CODES.h5 files by source name (the first file naming a source wins).
struct CodeTable {
  int64_t per_frame = 0, codebook_size = 0;
  std::vector<int32_t> codes;  // rank 0: every frame of every file, in order
  std::unordered_map<std::string, int64_t> frame_of;

  // Collective.
  void load(const std::vector<std::string>& paths) {
    for (const std::string& path : paths) {
      const io::VqganCodesHeader header = io::read_vqgan_codes_header(path);
      if (per_frame && (header.size * header.size != per_frame || header.codebook_size != codebook_size))
        throw InputError("'" + path + "' holds frames of " + std::to_string(header.size * header.size) + " codes from a codebook of " +
                         std::to_string(header.codebook_size) + "; the first codes file has " + std::to_string(per_frame) + " of " +
                         std::to_string(codebook_size));
      per_frame = header.size * header.size;
      codebook_size = header.codebook_size;
      TokenRun run;
      run.count = mpi::world_rank() == 0 ? header.frames : 0;
      const std::vector<int32_t> frames = io::read_vqgan_codes(path, header, run);
      const int64_t first = static_cast<int64_t>(codes.size()) / per_frame;
      codes.insert(codes.end(), frames.begin(), frames.end());
      for (int64_t f = 0; f < header.frames; ++f) frame_of.emplace(source_key(header.sources[static_cast<std::size_t>(f)]), first + f);
    }
  }
  const int64_t* find(const std::string& source) const {
    const auto it = frame_of.find(source_key(source));
    return it == frame_of.end() ? nullptr : &it->second;
  }
  std::vector<int32_t> frame(int64_t f) const {
    return std::vector<int32_t>(codes.begin() + f * per_frame, codes.begin() + (f + 1) * per_frame);
  }
};

struct Progress {
  double t0 = wall_seconds(), last = 0;
  void report(std::size_t file, std::size_t files, long long records, long long docs, long long tokens, long long frames, bool final) {
    const double now = wall_seconds() - t0;
    if (!final && now - last < 2.0) return;
    last = now;
    std::fprintf(stderr, "  file %zu of %zu: %lld records, %lld documents, %lld tokens, %lld frames (%.1f s)\n", file, files, records,
                 docs, tokens, frames, now);
  }
};

class VisionPreparer {
 public:
  VisionPreparer(const PrepareVisionOptions& o, const CodeTable* table, device::Backend* backend, vision::VqganWeights* weights)
      : o_(o), table_(table), tokenizer_(data::make_tokenizer(o.tokenizer)) {
    if (weights) {
      encoder_ = std::make_unique<vision::FrameEncoder>(*backend, weights->config, weights->values, o.batch);
      weights->values = {};
      image_size_ = weights->config.image_size;
    }
    vocab_.text_vocab = tokenizer_->vocab_size();
    vocab_.codebook_size = encoder_ ? encoder_->config().codebook_size : table->codebook_size;
    vocab_.vision_vocab = o.vision_vocab ? o.vision_vocab : vision::default_vision_vocab(vocab_.codebook_size);
    vision::check_vision_vocab(vocab_);
    per_frame_ = encoder_ ? encoder_->codes_per_frame() : table->per_frame;
    markers_.begin = tokenizer_->encode("<vision>");
    markers_.end = tokenizer_->encode("</vision>");
    markers_.bos = tokenizer_->bos_id();
    markers_.eos = tokenizer_->eos_id();
  }

  void run() {
    const std::vector<std::string> files = data::expand_input_paths(o_.inputs);
    for (const std::string& f : files)
      if (!data::is_jsonl_name(f)) throw InputError("'" + f + "': prepare --vision reads .jsonl records (one JSON object per line)");
    io::TokenDatasetWriter writer(o_.output, vocab_.total(), tokenizer_->description(), true, vocab_.vision_vocab);
    std::printf("ringworld prepare --vision: %zu file(s); text vocabulary %lld + vision %lld (codebook %lld, <eof> %d, <eov> %d); "
                "%lld codes + 1 per frame; frames %s\n",
                files.size(), static_cast<long long>(vocab_.text_vocab), static_cast<long long>(vocab_.vision_vocab),
                static_cast<long long>(vocab_.codebook_size), vocab_.eof_id(), vocab_.eov_id(), static_cast<long long>(per_frame_),
                encoder_ ? ("encoded here by " + o_.vqgan).c_str() : "from the codes file(s)");
    std::fflush(stdout);
    Progress progress;
    for (std::size_t fi = 0; fi < files.size(); ++fi) {
      const fs::path base = fs::path(files[fi]).parent_path();
      data::TextReader in(files[fi]);
      std::string line;
      for (long long n = 1; in.read_line(line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = files[fi] + ":" + std::to_string(n);
        add_record(data::parse_vision_record(line, where), base, where, writer);
        ++records_;
        progress.report(fi + 1, files.size(), records_, kept_, tokens_, frames_, false);
      }
    }
    progress.report(files.size(), files.size(), records_, kept_, tokens_, frames_, true);
    if (kept_ == 0)
      throw InputError("no document passed the length bounds (" + std::to_string(too_short_) + " too short, " +
                       std::to_string(too_long_) + " too long)");
    writer.finish();
    std::printf("ringworld prepare --vision: wrote %s: %lld documents from %lld records, %lld tokens (%lld vision), %lld frames, in %.1f s; "
                "left out %lld shorter than %lld and %lld longer than %lld tokens\n",
                o_.output.c_str(), kept_, records_, tokens_, vision_tokens_, frames_, progress.last, too_short_,
                static_cast<long long>(o_.min_doc_tokens), too_long_, static_cast<long long>(o_.max_doc_tokens));
  }

 private:
  std::string resolve(const std::string& path, const fs::path& base) const {
    const fs::path p(path);
    return p.is_absolute() || base.empty() ? p.string() : (base / p).string();
  }

  // The codes of one image (a vision block of one frame).
  std::vector<int32_t> image_codes(const std::string& path, const std::string& where) {
    ++frames_;
    if (!encoder_) return table_->frame(lookup(path, where));
    try {
      const std::vector<float> frame = model_frame(io::read_image(path), image_size_);
      return encoder_->encode(frame.data(), 1);
    } catch (const InputError& e) {
      throw InputError(where + ": " + e.what());
    }
  }

  int64_t lookup(const std::string& source, const std::string& where) const {
    const int64_t* f = table_->find(source);
    if (!f)
      throw InputError(where + ": no frame '" + source + "' in the codes file(s) (encode it with `ringworld vqgan encode`; " +
                       "paths are compared made absolute)");
    return *f;
  }

  // The codes of a video's frames (sampled at the record's fps, else --fps, then at most
  // max_frames chosen uniformly). A directory of frames is taken whole: a record's "fps" on one
  // is an error, --fps does not apply.
  std::vector<int32_t> video_codes(const std::string& path, double record_fps, int64_t max_frames, const std::string& where) {
    std::error_code ec;
    const bool directory = fs::is_directory(path, ec);
    if (directory && record_fps > 0)
      throw InputError(where + ": '" + path + "' is a directory of frames: every frame is taken (\"fps\" applies to video files)");
    const double fps = directory ? 0.0 : record_fps > 0 ? record_fps : o_.fps;
    std::vector<int32_t> codes;
    if (!encoder_) {
      std::vector<int64_t> frames;
      if (directory) {
        for (const std::string& file : io::list_frame_files(path)) frames.push_back(lookup(file, where));
      } else {
        for (int64_t k = 0;; ++k) {
          const int64_t* f = table_->find(video_frame_source(path, fps, k));
          if (!f) break;
          frames.push_back(*f);
        }
        if (frames.empty()) lookup(video_frame_source(path, fps, 0), where);  // the error, naming the first frame
      }
      for (int64_t i : uniform_frame_choice(static_cast<int64_t>(frames.size()), max_frames)) {
        const std::vector<int32_t> one = table_->frame(frames[static_cast<std::size_t>(i)]);
        codes.insert(codes.end(), one.begin(), one.end());
      }
    } else {
      // Cut to S x S bytes as they are decoded; all frames of one video must share a size.
      std::vector<std::vector<uint8_t>> cut;
      int64_t width = 0, height = 0;
      std::string first;
      try {
        for_each_input_frame(path, fps, true, [&](const std::string& source, const io::RgbImage* decoded) {
          io::RgbImage read;
          if (!decoded) read = io::read_image(source);
          const io::RgbImage& im = decoded ? *decoded : read;
          if (first.empty()) {
            first = source;
            width = im.width;
            height = im.height;
          } else if (im.width != width || im.height != height) {
            throw InputError("frame '" + source + "' is " + std::to_string(im.width) + " x " + std::to_string(im.height) +
                             "; the video's first frame ('" + first + "') is " + std::to_string(width) + " x " + std::to_string(height));
          }
          cut.push_back(vision::frame_to_rgb(model_frame(im, image_size_).data(), image_size_));
        });
      } catch (const InputError& e) {
        throw InputError(where + ": " + e.what());
      }
      const std::vector<int64_t> chosen = uniform_frame_choice(static_cast<int64_t>(cut.size()), max_frames);
      std::vector<float> frames;
      frames.reserve(chosen.size() * static_cast<std::size_t>(encoder_->frame_floats()));
      for (int64_t i : chosen) {
        const std::vector<float> f = vision::lwm_frame(cut[static_cast<std::size_t>(i)].data(), image_size_, image_size_, image_size_);
        frames.insert(frames.end(), f.begin(), f.end());
      }
      codes = encoder_->encode(frames.data(), static_cast<int64_t>(chosen.size()));
    }
    frames_ += static_cast<long long>(codes.size()) / per_frame_;
    return codes;
  }

  static std::vector<int64_t> uniform_frame_choice(int64_t n, int64_t max_frames) {
    return vision::uniform_frame_indices(n, max_frames > 0 ? max_frames : std::max<int64_t>(n, 1));
  }

  void add_record(const data::VisionRecord& r, const fs::path& base, const std::string& where, io::TokenDatasetWriter& writer) {
    vision::VisionTextExample ex;
    ex.codes_per_frame = per_frame_;
    if (!r.video.empty()) {
      ex.blocks.push_back(video_codes(resolve(r.video, base), r.fps, r.max_frames ? r.max_frames : o_.max_frames, where));
    } else {
      for (const std::string& image : r.images) ex.blocks.push_back(image_codes(resolve(image, base), where));
    }
    if (!r.text.empty()) ex.text = tokenizer_->encode(r.text);
    const std::string task = r.task.empty() ? o_.task : r.task;
    std::vector<vision::VisionOrder> orders;
    if (task == "both" && r.task.empty()) orders = {vision::VisionOrder::caption, vision::VisionOrder::generate};
    else orders = {vision::parse_order(task, where)};
    if (ex.text.empty()) orders.resize(1);  // vision alone: one document whatever the order
    for (vision::VisionOrder order : orders) {
      ex.order = order;
      vision::TokenSequence s;
      try {
        s = vision::vision_text_sequence(vocab_, markers_, ex);
      } catch (const InputError& e) {
        throw InputError(where + ": " + e.what());
      }
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      if (n < o_.min_doc_tokens) {
        ++too_short_;
        continue;
      }
      if (o_.max_doc_tokens && n > o_.max_doc_tokens) {
        ++too_long_;
        continue;
      }
      writer.add_document(s.tokens, &s.loss_mask);
      ++kept_;
      tokens_ += n;
      for (int32_t id : s.tokens) vision_tokens_ += vocab_.is_vision(id);
    }
  }

  const PrepareVisionOptions& o_;
  const CodeTable* table_;
  std::unique_ptr<data::Tokenizer> tokenizer_;
  std::unique_ptr<vision::FrameEncoder> encoder_;
  int64_t image_size_ = 0, per_frame_ = 0;
  vision::VisionVocab vocab_;
  vision::VisionMarkers markers_;
  long long records_ = 0, kept_ = 0, tokens_ = 0, vision_tokens_ = 0, frames_ = 0, too_short_ = 0, too_long_ = 0;
};

}  // namespace

int run_prepare_vision(const PrepareVisionOptions& o) {
  const bool is_root = mpi::world_rank() == 0;
  std::string error;
  CodeTable table;
  try {
    io::check_output_path(o.output);
    for (const std::string& c : o.codes) io::check_input_file(c, "codes file");
    table.load(o.codes);  // collective
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (is_root && error.empty()) {
    try {
      std::unique_ptr<device::Backend> backend;
      vision::VqganWeights weights;
      if (!o.vqgan.empty()) {
        backend = device::make_backend(o.device);
        weights = vision::read_vqgan_weights(o.vqgan);
      }
      VisionPreparer preparer(o, o.vqgan.empty() ? &table : nullptr, backend.get(), o.vqgan.empty() ? nullptr : &weights);
      preparer.run();
    } catch (const std::exception& e) {  // InputError, or e.g. an allocation failure: one message, no abort
      error = e.what();
    }
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld prepare: error: %s\n", error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace rw::cli
