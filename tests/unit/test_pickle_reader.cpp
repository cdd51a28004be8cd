// test_pickle_reader.cpp: the restricted pickle reader (io/pickle_reader.h) and LWM's pickled
// `vqgan` file through `import --from lwm-vqgan` (src/vision/vqgan_import.h), against the
// fixture Python itself pickled (tests/fixtures/make_lwm_vqgan_pickle.py):
//   * the parameter tree (protocols 4 and 2) gives, tensor by tensor, exactly the seeded values
//     rebuilt here from the script's formula (in PyTorch layout: the kernels transposed back);
//   * the VQGAN imported from it encodes a batch to the same latents and codes as the one
//     imported from a diffusers directory written here from the same values (same floats in,
//     same kernels: bitwise equal);
//   * the cases tree (protocols 2, 4, 5): a jax.Array, a jax 0.3 DeviceArray, a FrozenDict root, float16 / float64 /
//     big-endian / Fortran-order arrays, a numpy scalar, nesting: each value from its formula;
//   * hand-written pickles: every refused global named in the error, truncated files (every
//     prefix of the fixtures), memo misuse, huge declared sizes, cycles and shared dicts,
//     bfloat16 through ml_dtypes' type, opcodes outside the subset.
// About 0.2 s.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "device/backend.h"
#include "io/pickle_reader.h"
#include "src/common/input_error.h"
#include "src/vision/vqgan_import.h"
#include "src/vision/vqgan_model.h"
#include "src/vision/vqgan_weights.h"
#include "tests/input_error_check.h"
#include "tests/model_files_support.h"

#ifndef RW_FIXTURES_DIR
#error "RW_FIXTURES_DIR (tests/fixtures) must be defined"
#endif

namespace fs = std::filesystem;
using namespace rw;

namespace {

const fs::path kDir = fs::path(RW_FIXTURES_DIR) / "lwm_vqgan_pickle";

struct Scratch {
  fs::path path;
  explicit Scratch(const std::string& name) : path(fs::temp_directory_path() / ("rw_pickle_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Scratch() { fs::remove_all(path); }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

io::PickleTree read(const std::string& bytes) {
  return io::read_pickle_arrays(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test.pkl");
}

// The fixture script's seeded values (its docstring): diffusers tensor `name`, PyTorch shape.
uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}
uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
std::vector<float> seeded(const vision::VqganTensor& t) {
  const uint64_t seed = fnv1a64(t.name);
  std::vector<float> v(static_cast<std::size_t>(t.count()));
  const bool weight = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double u = static_cast<double>(splitmix64(seed + i) >> 40) / double(1 << 24) * 2 - 1;
    double x;
    if (t.name == "quantize.embedding.weight") x = u;
    else if (weight && t.shape.size() == 4) x = u * std::sqrt(3.0 / static_cast<double>(t.shape[1] * t.shape[2] * t.shape[3]));
    else if (weight) x = 1 + 0.2 * u;
    else x = 0.1 * u;
    v[i] = static_cast<float>(x);
  }
  return v;
}

vision::VqganConfig fixture_config() {
  return vision::parse_diffusers_vq_config(read_bytes(kDir / "config.json"), "config.json", 8, nullptr);
}

std::vector<float> fetch(const vision::VqganSource& src, const vision::VqganTensor& t) {
  std::vector<float> v(static_cast<std::size_t>(t.count()));
  src.fetch(t, v.data());
  return v;
}

// ---- hand-written pickles (protocol 4 opcodes) ----
std::string text(const std::string& s) { return "\x8c" + std::string(1, static_cast<char>(s.size())) + s; }
std::string short_bytes(const std::string& s) { return "C" + std::string(1, static_cast<char>(s.size())) + s; }
std::string int1(int v) { return "K" + std::string(1, static_cast<char>(v)); }
std::string global(const std::string& module, const std::string& name) { return "c" + module + "\n" + name + "\n"; }
std::string dtype(const std::string& code_or_type, const std::string& order = "<") {
  return global("numpy", "dtype") + code_or_type + "\x89\x88\x87R(" + int1(3) + text(order) + "NNN" +
         std::string("J\xff\xff\xff\xffJ\xff\xff\xff\xff", 10) + int1(0) + "tb";
}
// An ndarray as numpy's __reduce__ gives it: _reconstruct, then BUILD with (1, shape, dtype, False, data).
std::string array(const std::string& shape_tuple, const std::string& dtype_ops, const std::string& data_ops) {
  return global("numpy.core.multiarray", "_reconstruct") + global("numpy", "ndarray") + int1(0) + "\x85" + short_bytes("b") +
         "\x87R(" + int1(1) + shape_tuple + dtype_ops + "\x89" + data_ops + "tb";
}
std::string f32_array(const std::vector<float>& v) {
  return array(int1(static_cast<int>(v.size())) + "\x85", dtype(text("f4")), short_bytes(test::f32_bytes(v)));
}
// {key: value_ops} pickled whole.
std::string dict_pickle(const std::string& key, const std::string& value_ops) {
  return std::string("\x80\x04}(", 4) + text(key) + value_ops + "u.";
}

}  // namespace

TEST_CASE("pickle: LWM's vqgan tree, protocols 4 and 2, gives the seeded tensors", "[pickle][vqgan]") {
  const vision::VqganConfig c = fixture_config();
  for (const char* name : {"vqgan_p4.pkl", "vqgan_p2.pkl"}) {
    INFO(name);
    const auto src = vision::open_lwm_vqgan((kDir / name).string(), c);
    int tensors = 0;
    for (const vision::VqganTensor& t : vision::vqgan_tensors(c)) {
      INFO(t.name);
      CHECK(fetch(*src, t) == seeded(t));  // float32 values in, float32 out: exact
      ++tensors;
    }
    CHECK(tensors == 105);                                      // the script: "105 arrays, 10914 parameters"
    CHECK(vision::vqgan_parameter_counts(c).total() == 10914);
  }
}

TEST_CASE("pickle: the VQGAN imported from LWM's pickle encodes as the diffusers import does", "[pickle][vqgan]") {
  Scratch scratch("encode");
  const vision::VqganConfig c = fixture_config();
  // The diffusers form of the same values, written here.
  const fs::path dir = scratch.path / "diffusers";
  fs::create_directories(dir);
  fs::copy_file(kDir / "config.json", dir / "config.json");
  test::SafetensorsBuilder b;
  for (const vision::VqganTensor& t : vision::vqgan_tensors(c)) b.add(t.name, "F32", t.shape, test::f32_bytes(seeded(t)));
  test::write_file((dir / "diffusion_pytorch_model.safetensors").string(), b.bytes());
  auto weights = [&](const vision::VqganSource& src, const std::string& out) {
    write_vqgan_weights(out, src.config(), src.description(), [&](const vision::VqganTensor& t, float* o) { src.fetch(t, o); });
    return vision::read_vqgan_weights(out);
  };
  const vision::VqganWeights from_diffusers = weights(*vision::open_diffusers_vq(dir.string(), 8), (scratch.path / "d.h5").string());
  const vision::VqganWeights from_pickle = weights(*vision::open_lwm_vqgan((kDir / "vqgan_p4.pkl").string(), c), (scratch.path / "p.h5").string());
  REQUIRE(from_pickle.values == from_diffusers.values);

  const int64_t n = 3, latent = c.latent_size() * c.latent_size();
  std::vector<float> frames(static_cast<std::size_t>(n * 3 * 8 * 8));
  for (std::size_t i = 0; i < frames.size(); ++i) frames[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  auto be = device::make_backend("cpu");
  auto encode = [&](const vision::VqganWeights& w, std::vector<float>* z_out, std::vector<int32_t>* codes_out) {
    vision::VqganModel model(device::ExecContext::on_default_stream(*be), c);
    model.load_weights(w.values);
    device::DeviceArray<float> in(*be, frames.size()), z(*be, static_cast<std::size_t>(n * c.codebook_dim * latent));
    device::DeviceArray<int32_t> codes(*be, static_cast<std::size_t>(n * latent));
    in.upload(frames.data());
    model.encode(in.data(), n, z.data());
    model.quantize(z.data(), n, codes.data(), nullptr);
    z_out->resize(static_cast<std::size_t>(n * c.codebook_dim * latent));
    codes_out->resize(static_cast<std::size_t>(n * latent));
    z.download(z_out->data());
    codes.download(codes_out->data());
  };
  std::vector<float> z_d, z_p;
  std::vector<int32_t> codes_d, codes_p;
  encode(from_diffusers, &z_d, &codes_d);
  encode(from_pickle, &z_p, &codes_p);
  CHECK(z_p == z_d);
  CHECK(codes_p == codes_d);
  std::map<int32_t, int> distinct;
  for (int32_t code : codes_p) ++distinct[code];
  CHECK(distinct.size() > 1);  // not a degenerate encoding
}

TEST_CASE("pickle: jax arrays (0.4 and 0.3), FrozenDict, float16/float64, byte order, Fortran order, scalars", "[pickle]") {
  for (int protocol : {2, 4, 5}) {
    INFO("protocol " << protocol);
    const std::string bytes = read_bytes(kDir / ("cases_p" + std::to_string(protocol) + ".pkl"));
    const io::PickleTree tree = read(bytes);
    std::map<std::string, const io::PickleArray*> by_key;
    for (const io::PickleArray& a : tree.arrays) by_key[a.key_text()] = &a;
    REQUIRE(by_key.size() == 8);
    auto values = [&](const std::string& key, const std::vector<int64_t>& shape, const std::string& dtype) {
      INFO(key);
      REQUIRE(by_key.count(key));
      const io::PickleArray& a = *by_key.at(key);
      CHECK(a.shape == shape);
      CHECK(a.dtype == dtype);
      std::vector<float> v(static_cast<std::size_t>(a.count()));
      io::pickle_array_to_f32(a, v.data());
      return v;
    };
    std::vector<float> want;
    for (int i = 0; i < 6; ++i) want.push_back(0.5f * i - 1);
    CHECK(values("jax/w", {2, 3}, "float32") == want);
    CHECK(values("jax03", {3}, "float32") == std::vector<float>{0.0f, 2.0f, 4.0f});
    CHECK(values("f16", {4}, "float16") == std::vector<float>{-0.5f, -0.25f, 0.0f, 0.25f});
    CHECK(values("f64", {3}, "float64") == std::vector<float>{0.0f, static_cast<float>(1 / 3.0), static_cast<float>(2 / 3.0)});
    want.clear();
    for (int i = 0; i < 24; ++i) want.push_back(static_cast<float>(i));
    CHECK(values("fortran", {2, 3, 4}, "float32") == want);
    CHECK(values("big", {5}, "float32") == std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f});
    CHECK(values("scalar", {}, "float32") == std::vector<float>{2.5f});
    CHECK(values("nested/deeper/x", {2}, "float32") == std::vector<float>{-7.0f, -6.0f});
  }
}

TEST_CASE("pickle: hand-written files: the accepted forms", "[pickle]") {
  // bfloat16 as ml_dtypes' type inside np.dtype(type, False, True): 1.0, -2.0, 0.5.
  for (const char* module : {"ml_dtypes", "ml_dtypes._ml_dtypes_ext"}) {
    const std::string bf16 = array(int1(3) + "\x85", dtype(global(module, "bfloat16"), "|"),
                                   short_bytes(std::string("\x80\x3f\x00\xc0\x00\x3f", 6)));
    const std::string file = dict_pickle("w", bf16);  // the arrays are views into it: it outlives the tree
    const io::PickleTree t = read(file);
    REQUIRE(t.arrays.size() == 1);
    CHECK(t.arrays[0].dtype == "bfloat16");
    std::vector<float> v(3);
    io::pickle_array_to_f32(t.arrays[0], v.data());
    CHECK(v == std::vector<float>{1.0f, -2.0f, 0.5f});
  }
  // A 'params' root and memo references (BINPUT / BINGET) to a shared array are fine.
  const std::string shared = std::string("\x80\x04}(", 4) + text("a") + f32_array({1, 2}) + "q\x05" + text("b") + "h\x05u.";
  const io::PickleTree t = read(shared);
  REQUIRE(t.arrays.size() == 2);
  CHECK(t.arrays[1].data == t.arrays[0].data);
  // Integer sizes as BININT2 / LONG1 / BININT.
  const std::string sizes = array(std::string("M\x02\x00", 3) + std::string("\x8a\x01\x01", 3) + "J" + std::string("\x01\x00\x00\x00", 4) + "\x87",
                                  dtype(text("f4")), short_bytes(test::f32_bytes({3, 4})));
  const std::string sizes_file = dict_pickle("x", sizes);
  const io::PickleTree s = read(sizes_file);
  REQUIRE(s.arrays.size() == 1);
  CHECK(s.arrays[0].shape == std::vector<int64_t>{2, 1, 1});
}

TEST_CASE("pickle: refused globals, opcodes and malformed files: one InputError each", "[pickle]") {
  // Globals outside the whitelist, by GLOBAL and by STACK_GLOBAL: refused by name, nothing run.
  for (const auto& refused : std::vector<std::pair<std::string, std::string>>{
           {"os", "system"}, {"posix", "system"}, {"builtins", "eval"}, {"__builtin__", "exec"}, {"builtins", "getattr"},
           {"subprocess", "Popen"}, {"numpy", "load"}, {"numpy.core.multiarray", "_reconstructx"}, {"numpy.core", "multiarray"},
           {"numpy.testing._private.utils", "runstring"}, {"pickle", "loads"}, {"collections", "OrderedDict"},
           {"jax._src.array", "ArrayImpl"}, {"ml_dtypes", "float8_e4m3fn"}}) {
    const std::string module = refused.first, name = refused.second;  // not a structured binding: the lambdas of CHECK_ERROR capture them
    const std::string what = "the global " + module + "." + name + " is not allowed";
    CHECK_ERROR(read(dict_pickle("x", global(module, name) + text("echo") + "\x85R")), what);
    CHECK_ERROR(read(dict_pickle("x", text(module) + text(name) + "\x93" + ")R")), what);
  }
  // Whitelisted globals used other than numpy uses them.
  CHECK_ERROR(read(dict_pickle("x", global("numpy", "ndarray") + ")R")), "numpy.ndarray is not called");
  CHECK_ERROR(read(dict_pickle("x", global("_codecs", "encode") + text("\xe2\x82\xac") + text("latin1") + "\x86R")),
              "not latin-1");
  CHECK_ERROR(read(dict_pickle("x", global("_codecs", "encode") + text("a") + text("utf-8") + "\x86R")),
              "unexpected arguments to _codecs.encode");
  CHECK_ERROR(read(dict_pickle("x", global("jax._src.array", "_reconstruct_array") + "(" + text("a") + ")}}tR")),
              "REDUCE calls a string, not a global");
  CHECK_ERROR(read(dict_pickle("x", global("jax._src.array", "_reconstruct_array") + "(" + global("numpy", "dtype") + "(" +
                                        text("f4") + "t(" + int1(3) + text("<") + "t}tR")),
              "does not rebuild a numpy array");

  // Opcodes outside the subset.
  CHECK_ERROR(read(std::string("\x80\x04", 2) + global("numpy", "ndarray") + ")\x81."), "creates class instances");
  CHECK_ERROR(read(std::string("\x80\x05\x97.", 4)), "out-of-band buffers");
  CHECK_ERROR(read(std::string("\x80\x02I1\n.", 6)), "protocol-0 text opcode");
  CHECK_ERROR(read(std::string("\x80\x04\xff.", 4)), "unsupported opcode 0xff");
  CHECK_ERROR(read(std::string("\x80\x01}.", 4)), "is not a pickle of protocol 2 to 5");
  CHECK_ERROR(read(std::string("(dp0\n.", 6)), "is not a pickle of protocol 2 to 5");

  // Truncated: every prefix of the fixtures (a clean error, never a crash or a partial tree).
  for (const char* name : {"cases_p2.pkl", "cases_p4.pkl", "cases_p5.pkl", "vqgan_p4.pkl"}) {
    const std::string full = read_bytes(kDir / name);
    int refused = 0;
    const std::size_t step = full.size() > 5000 ? 97 : 1;
    for (std::size_t n = 0; n < full.size(); n += step) {
      try {
        (void)read(full.substr(0, n));
      } catch (const InputError&) {
        ++refused;
      }
    }
    CHECK(refused == static_cast<int>((full.size() + step - 1) / step));
  }
  CHECK_ERROR(read(std::string("\x80\x04\x8c\x10" "abc", 7)), "truncated (16 bytes declared, 3 left)");
  CHECK_ERROR(read(std::string("\x80\x04}", 3)), "ends without STOP");

  // Memo misuse.
  CHECK_ERROR(read(std::string("\x80\x04h\x03.", 5)), "memo entry 3 is read before it is written");
  CHECK_ERROR(read(std::string("\x80\x04}j\xff\xff\xff\xff.", 9)), "memo entry 4294967295 is read before");
  CHECK_ERROR(read(std::string("\x80\x04q\x00.", 5)), "the stack is empty");
  CHECK_ERROR(read(std::string("\x80\x04}(q\x00.", 7)), "the stack is empty");  // BINPUT cannot reach below a MARK
  CHECK_ERROR(read(std::string("\x80\x04}\x94h\x00h\x00s.", 10)), "has a key that is a dict");

  // Huge declared sizes: lengths beyond the file, shapes beyond 2^40 elements or the data.
  CHECK_ERROR(read(std::string("\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x10.", 12)), "truncated (1152921504606846976 bytes");
  CHECK_ERROR(read(std::string("\x80\x04X\xff\xff\xff\xff.", 8)), "truncated (4294967295 bytes declared");
  CHECK_ERROR(read(std::string("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f.", 12)), "a frame of 9223372036854775807 bytes");
  const std::string big = std::string("J\x00\x00\x00\x40", 5);  // 2^30
  CHECK_ERROR(read(dict_pickle("x", array("(" + big + big + big + "t", dtype(text("f4")), short_bytes("abcd")))),
              "more than 2^40 elements");
  CHECK_ERROR(read(dict_pickle("x", array(int1(3) + "\x85", dtype(text("f4")), short_bytes("abcd")))),
              "an array of 3 float32 elements holds 4 bytes");
  CHECK_ERROR(read(dict_pickle("x", array(std::string("J\xff\xff\xff\xff", 5) + "\x85", dtype(text("f4")), short_bytes("")))),
              "sizes >= 0 expected");
  CHECK_ERROR(read(std::string("\x80\x04\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00.", 14)), "an integer of 9 bytes");
  CHECK_ERROR(read(dict_pickle("x", array(int1(1) + "\x85", dtype(text("O8")), short_bytes("abcdefgh")))), "not a numeric dtype");
  // bfloat16 saved without ml_dtypes' type (numpy sees raw 2-byte voids): refused, saying how it is read.
  CHECK_ERROR(read(dict_pickle("x", array(int1(1) + "\x85", dtype(text("V2")), short_bytes("ab")))),
              "dtype 'V2' is not a numeric dtype (bfloat16 arrays are read when their dtype is ml_dtypes.bfloat16)");
  CHECK_ERROR(read(dict_pickle("x", array(int1(1) + "\x85", dtype(text("i4")), "]" + int1(1) + "a"))), "object array");

  // Cycles and shared dicts: a list holding itself (freed, not leaked: the sanitizer build
  // checks), a dict holding itself, a dict reached twice.
  CHECK_ERROR(read(std::string("\x80\x04]q\x00h\x00" "a.", 9)), "the root is a list");
  CHECK_ERROR(read(std::string("\x80\x04}q\x00(", 6) + text("me") + std::string("h\x00u.", 4)), "me is a dict met before");
  CHECK_ERROR(read(std::string("\x80\x04}(", 4) + text("a") + "}q\x01" + text("b") + "h\x01u."), "b is a dict met before");

  // Trees that are not parameter trees.
  CHECK_ERROR(read(std::string("\x80\x04", 2) + f32_array({1}) + "."), "the root is an array");
  CHECK_ERROR(read(dict_pickle("x", int1(5))), "x is an integer, not an array or a dict");
  CHECK_ERROR(read(std::string("\x80\x04}(", 4) + int1(1) + f32_array({1}) + "u."), "has a key that is an integer");
  {
    const std::string file = dict_pickle("x", array(int1(1) + "\x85", dtype(text("i4")), short_bytes("abcd")));
    const io::PickleTree t = read(file);
    std::vector<float> v(1);
    CHECK_ERROR(io::pickle_array_to_f32(t.arrays[0], v.data()), "x has dtype int32");
  }
}

TEST_CASE("pickle: bad LWM pickles through import --from lwm-vqgan", "[pickle][vqgan]") {
  Scratch scratch("bad");
  const vision::VqganConfig c = fixture_config();
  const std::string good = read_bytes(kDir / "vqgan_p4.pkl");
  // An extra array (an attention block) beside the tree.
  const std::string extra = std::string("\x80\x04}(", 4) + text("params") +
                            std::string(good.begin() + 2 + (good[2] == '\x95' ? 9 : 0), good.end() - 1) + text("attn") + f32_array({1}) + "u.";
  test::write_file((scratch.path / "extra.pkl").string(), extra);
  CHECK_ERROR(vision::open_lwm_vqgan((scratch.path / "extra.pkl").string(), c), "': attn is not a parameter");
  vision::VqganConfig wider = c;
  wider.latent_channels = 8;
  CHECK_ERROR(vision::open_lwm_vqgan((kDir / "vqgan_p4.pkl").string(), wider), "has shape [3, 3, 8, 4], the config implies [3, 3, 8, 8]");
  test::write_file((scratch.path / "evil.pkl").string(), dict_pickle("encoder", global("os", "system") + text("true") + "\x85R"));
  CHECK_ERROR(vision::open_lwm_vqgan((scratch.path / "evil.pkl").string(), c), "the global os.system is not allowed");
}
