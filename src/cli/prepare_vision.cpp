// prepare_vision.cpp: see prepare_vision.h. With --vqgan the frames are encoded data-parallel,
// as `vqgan encode` does: every rank walks every record in order (so all agree on the frame
// numbers; a video is decoded by every rank), rank r of N encodes frames r, r + N, ... in
// batches of --batch, and the codes are gathered on rank 0 (mpi::gather_bytes_to_root). Rank 0
// then reads the records again and writes one document per record and order (two with
// --vision-task both), taking each record's frames' codes in the order the walk met them, or
// looking them up (--codes). CODES.h5 is read collectively first (the codes reader is
// collective), every rank taking part, rank 0 keeping all frames.
#include "src/cli/prepare_vision.h"

#include <cstdio>
#include <cstring>
#include <functional>
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
#include "src/common/fatal.h"
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

// Records of the inputs, one call per non-blank line: on_record(record, base dir, "file:line").
void for_each_record(const std::vector<std::string>& files,
                     const std::function<void(const data::VisionRecord&, const fs::path&, const std::string&)>& on_record) {
  for (const std::string& f : files) {
    const fs::path base = fs::path(f).parent_path();
    data::TextReader in(f);
    std::string line;
    for (long long n = 1; in.read_line(line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = f + ":" + std::to_string(n);
      on_record(data::parse_vision_record(line, where), base, where);
    }
  }
}

std::vector<std::string> jsonl_inputs(const std::vector<std::string>& inputs) {
  const std::vector<std::string> files = data::expand_input_paths(inputs);
  for (const std::string& f : files)
    if (!data::is_jsonl_name(f)) throw InputError("'" + f + "': prepare --vision reads .jsonl records (one JSON object per line)");
  return files;
}

std::string resolve(const std::string& path, const fs::path& base) {
  const fs::path p(path);
  return p.is_absolute() || base.empty() ? p.string() : (base / p).string();
}

std::vector<int64_t> uniform_frame_choice(int64_t n, int64_t max_frames) {
  return vision::uniform_frame_indices(n, max_frames > 0 ? max_frames : std::max<int64_t>(n, 1));
}

// --vqgan: every record's frames encoded data-parallel. Frame g (numbered in the order the
// records name them: each image, each video's chosen frames) belongs to rank g mod N.
class SharedEncoding {
 public:
  SharedEncoding(const PrepareVisionOptions& o, device::Backend& backend, vision::VqganWeights& weights)
      : o_(o), encoder_(backend, weights.config, weights.values, o.batch), image_size_(weights.config.image_size),
        rank_(mpi::world_rank()), world_(mpi::world_size()) {
    weights.values = {};
  }

  // Every rank: walks every record, encodes this rank's frames. Throws InputError (naming the record).
  void walk(const std::vector<std::string>& files) {
    for_each_record(files, [&](const data::VisionRecord& r, const fs::path& base, const std::string& where) {
      try {
        if (!r.video.empty()) {
          add_video(resolve(r.video, base), r.fps, r.max_frames ? r.max_frames : o_.max_frames);
        } else {
          for (const std::string& image : r.images) add_image(resolve(image, base));
        }
      } catch (const InputError& e) {
        throw InputError(where + ": " + e.what());
      }
    });
    flush();
    report(true);
  }

  // Collective: rank 0 receives every frame's codes, in frame order.
  void gather() {
    const int64_t per = encoder_.codes_per_frame();
    std::vector<unsigned char> own(own_codes_.size() * sizeof(int32_t));
    if (!own.empty()) std::memcpy(own.data(), own_codes_.data(), own.size());  // a rank may have no frames
    const std::vector<unsigned char> all = mpi::gather_bytes_to_root(own);
    own_codes_ = {};
    if (rank_ != 0) return;
    RW_CHECK(static_cast<int64_t>(all.size()) == frames_ * per * static_cast<int64_t>(sizeof(int32_t)),
             "prepare --vision: the gathered codes miscounted");
    codes_.resize(static_cast<std::size_t>(frames_ * per));
    // Rank r's part holds frames r, r + N, ...; parts in rank order.
    int64_t offset = 0;
    for (int64_t r = 0; r < world_; ++r)
      for (int64_t g = r; g < frames_; g += world_, offset += per)
        std::memcpy(codes_.data() + g * per, all.data() + offset * static_cast<int64_t>(sizeof(int32_t)),
                    static_cast<std::size_t>(per) * sizeof(int32_t));
  }

  // Rank 0, in the walk's order: the codes of the next vision block (an image, or a video's frames).
  std::vector<int32_t> next_block() {
    RW_CHECK(next_block_ < blocks_.size(), "prepare --vision: more vision blocks than the walk met");
    const int64_t per = encoder_.codes_per_frame(), n = blocks_[next_block_++];
    std::vector<int32_t> codes(codes_.begin() + next_frame_ * per, codes_.begin() + (next_frame_ + n) * per);
    next_frame_ += n;
    return codes;
  }

  const vision::VqganConfig& config() const { return encoder_.config(); }

 private:
  bool own(int64_t g) const { return g % world_ == rank_; }

  void add_image(const std::string& path) {
    blocks_.push_back(1);
    if (own(frames_++)) {  // only the owner reads the file
      const std::vector<float> frame = model_frame(io::read_image(path), image_size_);
      add_own(frame.data());
    }
  }

  // A video's frames (sampled at the record's fps, else --fps, then at most max_frames chosen
  // uniformly), cut to S x S bytes as they are decoded; all frames of one video must share a
  // size. A directory of frames is taken whole: a record's "fps" on one is an error, --fps does
  // not apply.
  void add_video(const std::string& path, double record_fps, int64_t max_frames) {
    std::error_code ec;
    const bool directory = fs::is_directory(path, ec);
    if (directory && record_fps > 0)
      throw InputError("'" + path + "' is a directory of frames: every frame is taken (\"fps\" applies to video files)");
    const double fps = directory ? 0.0 : record_fps > 0 ? record_fps : o_.fps;
    std::vector<std::vector<uint8_t>> cut;
    int64_t width = 0, height = 0;
    std::string first;
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
    const std::vector<int64_t> chosen = uniform_frame_choice(static_cast<int64_t>(cut.size()), max_frames);
    blocks_.push_back(static_cast<int64_t>(chosen.size()));
    for (int64_t i : chosen)
      if (own(frames_++)) {
        const std::vector<float> f = vision::lwm_frame(cut[static_cast<std::size_t>(i)].data(), image_size_, image_size_, image_size_);
        add_own(f.data());
      }
  }

  void add_own(const float* frame) {
    pending_.insert(pending_.end(), frame, frame + encoder_.frame_floats());
    if (static_cast<int64_t>(pending_.size()) >= o_.batch * encoder_.frame_floats()) flush();
  }

  void flush() {
    const int64_t n = static_cast<int64_t>(pending_.size()) / encoder_.frame_floats();
    if (n == 0) return;
    const std::vector<int32_t> codes = encoder_.encode(pending_.data(), n);
    own_codes_.insert(own_codes_.end(), codes.begin(), codes.end());
    pending_.clear();
    encoded_ += n;
    report(false);
  }

  // Rank 0's progress (every rank encodes about as many frames).
  void report(bool final) {
    if (rank_ != 0) return;
    const double now = wall_seconds() - t0_;
    if (!final && now - last_ < 2.0) return;
    last_ = now;
    if (final)
      std::fprintf(stderr, "  rank 0: encoded its %lld frames of the %lld on %lld ranks, %.1f s\n", encoded_,
                   static_cast<long long>(frames_), static_cast<long long>(world_), now);
    else
      std::fprintf(stderr, "  rank 0: encoded %lld frames (%lld met so far on %lld ranks), %.1f s\n", encoded_,
                   static_cast<long long>(frames_), static_cast<long long>(world_), now);
  }

  const PrepareVisionOptions& o_;
  vision::FrameEncoder encoder_;
  int64_t image_size_, rank_, world_;
  std::vector<float> pending_;        // this rank's frames not yet encoded
  std::vector<int32_t> own_codes_;    // this rank's frames' codes, in frame order
  std::vector<int32_t> codes_;        // rank 0, after gather(): every frame's codes
  std::vector<int64_t> blocks_;       // frames of each vision block, in walk order
  int64_t frames_ = 0;                // frames met (every rank's)
  long long encoded_ = 0;             // frames encoded here
  std::size_t next_block_ = 0;
  int64_t next_frame_ = 0;
  double t0_ = wall_seconds(), last_ = 0;
};

class VisionPreparer {
 public:
  // Exactly one of table (--codes) and shared (--vqgan, after its walk and gather).
  VisionPreparer(const PrepareVisionOptions& o, const CodeTable* table, SharedEncoding* shared)
      : o_(o), table_(table), shared_(shared), tokenizer_(data::make_tokenizer(o.tokenizer)) {
    vocab_.text_vocab = tokenizer_->vocab_size();
    vocab_.codebook_size = shared_ ? shared_->config().codebook_size : table->codebook_size;
    vocab_.vision_vocab = o.vision_vocab ? o.vision_vocab : vision::default_vision_vocab(vocab_.codebook_size);
    vision::check_vision_vocab(vocab_);
    per_frame_ = shared_ ? shared_->config().codes_per_frame() : table->per_frame;
    markers_.begin = tokenizer_->encode("<vision>");
    markers_.end = tokenizer_->encode("</vision>");
    markers_.bos = tokenizer_->bos_id();
    markers_.eos = tokenizer_->eos_id();
  }

  void run() {
    const std::vector<std::string> files = jsonl_inputs(o_.inputs);
    io::TokenDatasetWriter writer(o_.output, vocab_.total(), tokenizer_->description(), true, vocab_.vision_vocab);
    std::printf("ringworld prepare --vision: %zu file(s); text vocabulary %lld + vision %lld (codebook %lld, <eof> %d, <eov> %d); "
                "%lld codes + 1 per frame; frames %s\n",
                files.size(), static_cast<long long>(vocab_.text_vocab), static_cast<long long>(vocab_.vision_vocab),
                static_cast<long long>(vocab_.codebook_size), vocab_.eof_id(), vocab_.eov_id(), static_cast<long long>(per_frame_),
                shared_ ? ("encoded by " + o_.vqgan + " on " + std::to_string(mpi::world_size()) + " rank(s)").c_str()
                        : "from the codes file(s)");
    std::fflush(stdout);
    Progress progress;
    for (std::size_t fi = 0; fi < files.size(); ++fi)
      for_each_record({files[fi]}, [&](const data::VisionRecord& r, const fs::path& base, const std::string& where) {
        add_record(r, base, where, writer);
        ++records_;
        progress.report(fi + 1, files.size(), records_, kept_, tokens_, frames_, false);
      });
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
  // The codes of one image (a vision block of one frame).
  std::vector<int32_t> image_codes(const std::string& path, const std::string& where) {
    ++frames_;
    if (shared_) return shared_->next_block();
    return table_->frame(lookup(path, where));
  }

  int64_t lookup(const std::string& source, const std::string& where) const {
    const int64_t* f = table_->find(source);
    if (!f)
      throw InputError(where + ": no frame '" + source + "' in the codes file(s) (encode it with `ringworld vqgan encode`; " +
                       "paths are compared made absolute)");
    return *f;
  }

  // The codes of a video's frames (sampled at the record's fps, else --fps, then at most
  // max_frames chosen uniformly; with --vqgan SharedEncoding chose and encoded them). A
  // directory of frames is taken whole: a record's "fps" on one is an error, --fps does not apply.
  std::vector<int32_t> video_codes(const std::string& path, double record_fps, int64_t max_frames, const std::string& where) {
    std::vector<int32_t> codes;
    if (shared_) {
      codes = shared_->next_block();
    } else {
      std::error_code ec;
      const bool directory = fs::is_directory(path, ec);
      if (directory && record_fps > 0)
        throw InputError(where + ": '" + path + "' is a directory of frames: every frame is taken (\"fps\" applies to video files)");
      const double fps = directory ? 0.0 : record_fps > 0 ? record_fps : o_.fps;
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
    }
    frames_ += static_cast<long long>(codes.size()) / per_frame_;
    return codes;
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
  SharedEncoding* shared_;
  std::unique_ptr<data::Tokenizer> tokenizer_;
  int64_t per_frame_ = 0;
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
  // --vqgan: every rank loads the model and encodes its share of the frames.
  std::unique_ptr<device::Backend> backend;
  std::unique_ptr<SharedEncoding> shared;
  if (error.empty() && !o.vqgan.empty()) {
    try {
      backend = device::make_backend(o.device);
      vision::VqganWeights weights = vision::read_vqgan_weights(o.vqgan);
      shared = std::make_unique<SharedEncoding>(o, *backend, weights);
      shared->walk(jsonl_inputs(o.inputs));
    } catch (const std::exception& e) {  // InputError, or e.g. an allocation failure: one message, no abort
      error = e.what();
    }
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld prepare: error: %s\n", error.c_str());
    return 1;
  }
  if (shared) shared->gather();  // collective
  if (is_root) {
    try {
      VisionPreparer preparer(o, shared ? nullptr : &table, shared.get());
      preparer.run();
    } catch (const std::exception& e) {
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
