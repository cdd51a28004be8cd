// test_data.cpp: tokenizer round trips, the .jsonl reader, token dataset files, and the packed
// loader: segments and positions, documents longer than a sequence and straddling ranks,
// per-example weights, determinism and exact resume from a cursor.
#include <catch2/catch.hpp>
#include <hdf5.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>
#include <string>

#include "io/token_dataset.h"
#include "src/common/input_error.h"
#include "src/data/packed_loader.h"
#include "src/data/synthetic_source.h"
#include "src/data/tokenizer.h"

using namespace rw;

namespace {

// A dataset of documents whose tokens encode (document, index) so tests can tell where every
// token came from: token = (doc * 37 + index) % 251 + 1 (never 0), vocabulary 256.
struct TempDataset {
  std::string path;
  std::vector<std::vector<int32_t>> docs;
  explicit TempDataset(const std::vector<int>& lengths, const std::string& name) : path(name) {
    io::TokenDatasetWriter w(path, 256, "test", false);
    for (std::size_t d = 0; d < lengths.size(); ++d) {
      std::vector<int32_t> doc(lengths[d]);
      for (int i = 0; i < lengths[d]; ++i) doc[i] = static_cast<int32_t>((d * 37 + i) % 251 + 1);
      w.add_document(doc);
      docs.push_back(doc);
    }
    w.finish();
  }
  ~TempDataset() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("byte tokenizer round-trips any bytes", "[data]") {
  data::ByteTokenizer t;
  std::string text = "ring attention \xc3\xa9\n";
  text += std::string(1, '\0') + "\xff";
  CHECK(t.decode(t.encode(text)) == text);
  CHECK(t.encode("A") == std::vector<int32_t>{65});
  CHECK_THROWS_AS(t.decode({300}), InputError);
  CHECK(t.bos_id() == -1);  // no special tokens
  CHECK(t.eos_id() == -1);
  CHECK_THROWS_WITH(data::make_tokenizer("nonsense"), Catch::Contains("nonsense"));
}

TEST_CASE("jsonl text field: escapes, other fields, errors", "[data]") {
  CHECK(data::jsonl_text_field(R"({"id": 1, "text": "a\nb \"q\" \u00e9 \ud83d\ude00", "x": [1, {"y": null}]})", "f:1") ==
        "a\nb \"q\" \xc3\xa9 \xf0\x9f\x98\x80");
  CHECK_THROWS_WITH(data::jsonl_text_field(R"({"id": 1})", "f.jsonl:7"), Catch::Contains("f.jsonl:7"));
  CHECK_THROWS_AS(data::jsonl_text_field(R"({"text": 5})", "f:1"), InputError);
  CHECK_THROWS_AS(data::jsonl_text_field(R"({"text": "unterminated)", "f:1"), InputError);
}

TEST_CASE("jsonl text field: every escape, raw and escaped unicode", "[data]") {
  // Each JSON escape (RFC 8259 section 7) decodes to its one character; \u0000 is a real NUL byte.
  CHECK(data::jsonl_text_field(R"({"text": "\" \\ \/ \b \f \n \r \t"})", "f:1") == "\" \\ / \b \f \n \r \t");
  CHECK(data::jsonl_text_field(R"({"text": "a\u0000b"})", "f:1") == std::string("a\0b", 3));
  // Raw UTF-8 passes through byte for byte; \u escapes become UTF-8 (2, 3 and 4 bytes, the last
  // from a surrogate pair).
  CHECK(data::jsonl_text_field("{\"text\": \"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", "f:1") ==
        "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  CHECK(data::jsonl_text_field(R"({"text": "\u00E9 \u20ac \uD83D\uDE00"})", "f:1") == "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  // Whitespace around the object (and the \r a CRLF file leaves on each line) is allowed.
  CHECK(data::jsonl_text_field(" \t{\"text\":\"x\"} \r", "f:1") == "x");
  CHECK(data::jsonl_text_field(R"({"text": ""})", "f:1").empty());
}

TEST_CASE("jsonl text field: the top-level \"text\" and nothing else", "[data]") {
  CHECK(data::jsonl_text_field(R"({"meta": {"text": "inner"}, "text": "outer", "tags": ["text"]})", "f:1") == "outer");
  CHECK_THROWS_WITH(data::jsonl_text_field(R"({"meta": {"text": "inner"}})", "f:3"),
                    Catch::Contains("f:3") && Catch::Contains("no \"text\""));
  // Two "text" fields: refused rather than one picked silently.
  CHECK_THROWS_WITH(data::jsonl_text_field(R"({"text": "a", "text": "b"})", "f:4"),
                    Catch::Contains("f:4") && Catch::Contains("more than one"));
  for (const char* not_string : {R"({"text": null})", R"({"text": ["a"]})", R"({"text": {"a": 1}})", R"({"text": true})"})
    CHECK_THROWS_WITH(data::jsonl_text_field(not_string, "f:5"), Catch::Contains("f:5") && Catch::Contains("not a string"));
  for (const char* not_object : {R"(["text", "a"])", R"("text")", "42", "null"})
    CHECK_THROWS_WITH(data::jsonl_text_field(not_object, "f:6"), Catch::Contains("f:6") && Catch::Contains("not a JSON object"));
}

TEST_CASE("jsonl text field: malformed lines name the line", "[data]") {
  const std::vector<std::string> malformed = {
      R"({"text": "a"} trailing)",          // text after the object
      R"({"text": "a"}{"text": "b"})",      // two objects on one line
      R"({"text": "a",})",                  // trailing comma
      R"({"text" "a"})",                    // missing colon
      R"({'text': 'a'})",                   // single quotes
      R"({text: "a"})",                     // unquoted key
      R"({"id": tru, "text": "a"})",        // bad literal in a skipped field
      R"({"id": @@, "text": "a"})",         // garbage in a skipped field
      R"({"id": 01, "text": "a"})",         // leading zero
      R"({"id": [1, 2, "text": "a"})",      // unclosed array
      R"({"text": "a\x"})",                 // unknown escape
      R"({"text": "\u12"})",                // short \u escape
      R"({"text": "\ud83d"})",              // lone high surrogate
      R"({"text": "\ude00"})",              // lone low surrogate
      R"({"text": "\ud83d\u0041"})",        // high surrogate without its low half
      "{\"text\": \"tab\tinside\"}",         // raw control character in a string
      "{\"text\": \"\xff\xfe\"}",             // not UTF-8
      "{\"text\": \"\xc3\"}",                 // truncated UTF-8 sequence
      "{\"text\": \"\xed\xa0\x80\"}",         // UTF-8-encoded surrogate
      R"({"text": "a")",                    // unclosed object
      "",                                   // empty
  };
  for (const std::string& line : malformed) {
    INFO(line);
    CHECK_THROWS_WITH(data::jsonl_text_field(line, "in.jsonl:12"), Catch::Contains("in.jsonl:12"));
  }
  // Nesting far deeper than any document needs is refused, not a stack overflow.
  CHECK_THROWS_AS(data::jsonl_text_field("{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + ", \"text\": \"x\"}", "f:1"),
                  InputError);
}

TEST_CASE("token dataset files round-trip and are read in slices", "[data]") {
  TempDataset ds({5, 1, 300, 17}, "test_data_roundtrip.h5");
  io::TokenDatasetReader r(ds.path);
  CHECK(r.info().n_docs == 4);
  CHECK(r.info().n_tokens == 323);
  CHECK(r.info().vocab_size == 256);
  CHECK(r.info().tokenizer == "test");
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
  for (int d = 0; d < 4; ++d) {
    r.read_document(d, &tokens, &mask);
    CHECK(tokens == ds.docs[d]);
    CHECK(mask == std::vector<uint8_t>(ds.docs[d].size(), 1));
  }
  CHECK_THROWS_WITH(io::TokenDatasetReader("no_such_dataset.h5"), Catch::Contains("no_such_dataset.h5"));
}

TEST_CASE("token dataset: vision_vocab_size round-trips, reads 0 when absent, is range-checked", "[data]") {
  const std::string path = "test_data_vision_vocab.h5";
  {
    io::TokenDatasetWriter w(path, 256 + 8448, "byte", true, 8448);
    w.add_document({1, 256 + 8192, 256 + 8193}, nullptr);
    w.finish();
  }
  CHECK(io::TokenDatasetReader(path).info().vision_vocab_size == 8448);
  CHECK(io::TokenDatasetReader(path).info().vocab_size == 256 + 8448);
  {
    io::TokenDatasetWriter w(path, 256, "byte", false);
    w.add_document({1, 2});
    w.finish();
  }
  CHECK(io::TokenDatasetReader(path).info().vision_vocab_size == 0);
  // A value outside [0, vocab_size), written with the HDF5 API.
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const int64_t too_big = 256;
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = H5Acreate2(f, "vision_vocab_size", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, H5T_NATIVE_INT64, &too_big);
  H5Aclose(attr);
  H5Sclose(space);
  H5Fclose(f);
  CHECK_THROWS_WITH(io::TokenDatasetReader(path), Catch::Contains("'vision_vocab_size' must be an integer in [0, vocab_size = 256)"));
  std::remove(path.c_str());
}

TEST_CASE("a small token dataset makes a small file", "[data]") {
  // 323 tokens are 1.3 KB of int32; with HDF5's metadata the file stays well under 64 KiB
  // (a whole 1M-token chunk, as before, made it 4 MiB).
  TempDataset ds({5, 1, 300, 17}, "test_data_small_file.h5");
  CHECK(std::filesystem::file_size(ds.path) < 64 * 1024);
  io::TokenDatasetReader r(ds.path);
  std::vector<int32_t> tokens;
  r.read_document(2, &tokens, nullptr);
  CHECK(tokens == ds.docs[2]);
}

namespace {

// A dataset file written with the HDF5 API directly: /tokens (chunked, deflated when asked),
// /doc_offsets as given (declared_offsets entries, of which `offsets` are written), vocab_size.
void write_raw_dataset(const std::string& path, const std::vector<int32_t>& tokens, const std::vector<int64_t>& offsets,
                       hsize_t declared_offsets, bool deflate) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t n = tokens.size(), chunk = tokens.size();
  hid_t space = H5Screate_simple(1, &n, nullptr), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, &chunk);
  if (deflate) H5Pset_deflate(dcpl, 6);
  hid_t ds = H5Dcreate2(f, "tokens", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data());
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
  space = H5Screate_simple(1, &declared_offsets, nullptr);
  ds = H5Dcreate2(f, "doc_offsets", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t start = 0, count = offsets.size();
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &count, nullptr);
  hid_t mem = H5Screate_simple(1, &count, nullptr);
  H5Dwrite(ds, H5T_NATIVE_INT64, mem, space, H5P_DEFAULT, offsets.data());
  H5Sclose(mem);
  H5Dclose(ds);
  H5Sclose(space);
  const int64_t vocab = 256;
  space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(f, "vocab_size", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, H5T_NATIVE_INT64, &vocab);
  H5Aclose(attr);
  H5Sclose(space);
  H5Fclose(f);
}

}  // namespace

TEST_CASE("token dataset: /doc_offsets declaring more documents than tokens is refused unread", "[data]") {
  // 2^40 entries declared and never written (HDF5 reads them as zeros): the reader allocated
  // them all (8 TiB) before checking one.
  const std::string path = "test_data_declared_offsets.h5";
  write_raw_dataset(path, std::vector<int32_t>(6, 7), {0, 2, 6}, hsize_t{1} << 40, false);
  CHECK_THROWS_WITH(io::TokenDatasetReader(path), Catch::Contains("declares 1099511627775 documents") &&
                                                      Catch::Contains("only 6 tokens"));
  // As many entries as tokens + 1 allows, mostly unwritten: refused at the first bad entry.
  write_raw_dataset(path, std::vector<int32_t>(6, 7), {0, 2}, 7, false);
  CHECK_THROWS_WITH(io::TokenDatasetReader(path), Catch::Contains("document 1 is empty or /doc_offsets is not increasing"));
  std::remove(path.c_str());
}

TEST_CASE("token dataset: a damaged chunk is an input error naming the document", "[data]") {
  // A deflated /tokens chunk whose bytes were overwritten: H5Dread fails. The reader ended the
  // job through rw::fatal ("HDF5 call failed") instead of saying which file and document.
  const std::string path = "test_data_damaged_chunk.h5";
  std::vector<int32_t> tokens(4096);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i % 251);
  write_raw_dataset(path, tokens, {0, 1000, 4096}, 3, true);
  haddr_t chunk_address = 0;
  hsize_t chunk_bytes = 0;
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "tokens", H5P_DEFAULT);
    hsize_t offset = 0;
    unsigned filter_mask = 0;
    hid_t space = H5Dget_space(ds);
    REQUIRE(H5Dget_chunk_info(ds, space, 0, &offset, &filter_mask, &chunk_address, &chunk_bytes) >= 0);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
  }
  REQUIRE(chunk_bytes > 16);
  {
    std::FILE* f = std::fopen(path.c_str(), "r+b");
    REQUIRE(f);
    std::fseek(f, static_cast<long>(chunk_address), SEEK_SET);
    const std::vector<char> garbage(static_cast<std::size_t>(chunk_bytes), '\x5a');
    std::fwrite(garbage.data(), 1, garbage.size(), f);
    std::fclose(f);
  }
  io::TokenDatasetReader r(path);  // the metadata is intact: it opens
  std::vector<int32_t> doc;
  CHECK_THROWS_WITH(r.read_document(1, &doc, nullptr), Catch::Contains(path) && Catch::Contains("document 1"));
  std::remove(path.c_str());
}

TEST_CASE("masked packing: segments, positions, targets and per-example weights", "[data]") {
  // 60 + 10 + 100 + 25 tokens into sequences of 48: documents straddle sequences.
  TempDataset ds({60, 10, 100, 25}, "test_data_pack.h5");
  data::PackedLoaderOptions o;
  o.seq_len = 48;
  o.global_sequences = 4;
  o.seed = 3;
  o.layout = Layout::contiguous;
  data::PackedLoader loader(ds.path, o, 256);
  const data::GlobalBatch g = loader.next_global();
  REQUIRE(g.tokens.size() == 4u * 48u);
  // Recover each token's (doc, index) from its value and position.
  for (int s = 0; s < 4; ++s) {
    std::map<int, double> weight_sum;  // per segment
    std::map<int, int> targets;
    for (int t = 0; t < 48; ++t) {
      const std::size_t i = static_cast<std::size_t>(s) * 48 + t;
      const int seg = g.segment_ids[i], pos = g.positions[i];
      // The token at (segment, position) belongs to a document whose index `pos` holds it.
      bool found = false;
      for (const auto& doc : ds.docs)
        if (pos < static_cast<int>(doc.size()) && doc[pos] == g.tokens[i]) {
          found = true;
          // target: the next token of that document, or -1 at its end
          const int want = pos + 1 < static_cast<int>(doc.size()) ? doc[pos + 1] : -1;
          if (g.targets[i] >= 0) CHECK(g.targets[i] == want);
          if (want < 0) CHECK(g.targets[i] == -1);
        }
      CHECK(found);
      if (t > 0 && g.segment_ids[i - 1] == seg) CHECK(pos == g.positions[i - 1] + 1);  // contiguous within a segment
      if (g.targets[i] >= 0) {
        weight_sum[seg] += g.loss_weights[i];
        ++targets[seg];
      } else {
        CHECK(g.loss_weights[i] == 0.f);
      }
    }
    for (const auto& [seg, w] : weight_sum) CHECK(w == Approx(1.0).epsilon(1e-6));  // each example weighs 1
  }
  // A document longer than the room left continues in the next sequence at later positions.
  bool continued = false;
  for (int s = 1; s < 4; ++s)
    if (g.positions[static_cast<std::size_t>(s) * 48] > 0) continued = true;
  CHECK(continued);
}

TEST_CASE("packing is deterministic, resumes exactly from a cursor, and splits over ranks", "[data]") {
  std::vector<int> lengths;
  for (int d = 0; d < 40; ++d) lengths.push_back(7 + (d * 13) % 90);
  TempDataset ds(lengths, "test_data_resume.h5");
  data::PackedLoaderOptions o;
  o.seq_len = 64;
  o.global_sequences = 4;
  o.seed = 11;
  o.layout = Layout::zigzag;
  data::PackedLoader a(ds.path, o, 256), b(ds.path, o, 256);
  std::vector<data::GlobalBatch> first;
  for (int step = 0; step < 12; ++step) first.push_back(a.next_global());  // more than an epoch
  for (int step = 0; step < 12; ++step) CHECK(b.next_global().tokens == first[step].tokens);
  data::PackedLoader c(ds.path, o, 256);
  c.seek(4 * 7);  // after 7 global batches
  const data::GlobalBatch resumed = c.next_global();
  CHECK(resumed.tokens == first[7].tokens);
  CHECK(resumed.loss_weights == first[7].loss_weights);
  // Every rank's local slice, put back together, is the global batch.
  for (int dp : {1, 2})
    for (int sp : {1, 2}) {
      std::multiset<int32_t> all, parts;
      for (int dr = 0; dr < dp; ++dr)
        for (int sr = 0; sr < sp; ++sr) {
          data::PackedLoaderOptions r = o;
          r.dp = dp, r.dp_rank = dr, r.sp = sp, r.sp_rank = sr;
          data::PackedLoader l(ds.path, r, 256);
          const data::LocalBatch lb = l.next();
          CHECK(lb.n_local == 64 / sp);
          CHECK(lb.n_sequences == 4 / dp);
          parts.insert(lb.tokens.begin(), lb.tokens.end());
        }
      all.insert(first[0].tokens.begin(), first[0].tokens.end());
      CHECK(parts == all);
    }
}

TEST_CASE("the loader refuses a vocabulary larger than the model's and empty length bounds", "[data]") {
  TempDataset ds({30, 40}, "test_data_bad.h5");
  data::PackedLoaderOptions o;
  o.seq_len = 16;
  CHECK_THROWS_WITH(data::PackedLoader(ds.path, o, 100), Catch::Contains("vocabulary 256"));
  o.min_doc_tokens = 1000;
  CHECK_THROWS_WITH(data::PackedLoader(ds.path, o, 256), Catch::Contains("bounds"));
}

// A packed synthetic sequence whose last document would start one token before the end used to
// get a 2-token document there, written one token past the sequence (past the buffer on the
// last sequence). Every document must fit its sequence and hold at least 2 tokens (one target);
// over these lengths and seeds the one-token remainder occurs many times.
TEST_CASE("synthetic packed sequences: documents fit and have at least two tokens", "[data]") {
  int sequences = 0;
  for (int seq_len = 2; seq_len <= 64; ++seq_len)
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      data::SyntheticOptions o;
      o.seed = seed;
      o.seq_len = seq_len;
      o.global_sequences = 3;
      o.vocab_size = 50;
      o.packed = true;
      const data::GlobalBatch g = data::synthetic_global_batch(o, seed * 100);
      REQUIRE(g.tokens.size() == static_cast<std::size_t>(3 * seq_len));
      REQUIRE(g.segment_ids.size() == g.tokens.size());
      for (int s = 0; s < 3; ++s, ++sequences) {
        INFO("seq_len " << seq_len << ", seed " << seed << ", sequence " << s);
        const int32_t* seg = g.segment_ids.data() + static_cast<std::size_t>(s) * seq_len;
        const int32_t* tok = g.tokens.data() + static_cast<std::size_t>(s) * seq_len;
        int run = 1, short_documents = 0, bad_ids = seg[0] != 0, bad_tokens = 0;
        for (int t = 1; t <= seq_len; ++t) {
          if (t < seq_len && seg[t] == seg[t - 1]) {
            ++run;
            continue;
          }
          short_documents += run < 2;  // a finished document
          bad_ids += t < seq_len && seg[t] != seg[t - 1] + 1;
          run = 1;
        }
        for (int t = 0; t < seq_len; ++t) bad_tokens += tok[t] < 0 || tok[t] >= o.vocab_size;
        CHECK(short_documents == 0);
        CHECK(bad_ids == 0);
        CHECK(bad_tokens == 0);
      }
    }
  CHECK(sequences == 63 * 20 * 3);
}
