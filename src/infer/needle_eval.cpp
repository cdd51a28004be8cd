// needle_eval.cpp
#include "src/infer/needle_eval.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>

#include "src/common/count_text.h"
#include "src/common/input_error.h"
#include "src/data/global_batch.h"

namespace rw::infer {

std::vector<int> parse_lengths(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    int64_t value = 0;  // K/M/G as every token count (src/common/count_text.h)
    if (!parse_count(item, &value) || value <= 0 || value > INT32_MAX)
      throw InputError("bad length '" + item + "' in --lengths '" + text + "' (" + count_syntax() + ", from 1 to " +
                       std::to_string(INT32_MAX) + ")");
    out.push_back(static_cast<int>(value));
  }
  if (out.empty()) throw InputError("--lengths is empty");
  return out;
}

std::vector<double> parse_depths(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    std::size_t used = 0;
    double value = -1;
    try {
      value = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || value < 0 || value > 100) throw InputError("bad depth '" + item + "' (0-100) in --depths");
    out.push_back(value);
  }
  if (out.empty()) throw InputError("--depths is empty");
  return out;
}

std::vector<NeedleCell> evaluate_needles(model::Transformer& model, const NeedleEvalOptions& o, int ring_size,
                                         int ring_rank, void (*reduce)(std::vector<double>&, void*), void* context,
                                         void (*progress)(const std::string&)) {
  std::vector<NeedleCell> cells;
  const int64_t vocab = model.config().vocab_size;
  for (int length : o.lengths) {
    check_ring_split(o.layout, length, ring_size);
    // One document per (depth, trial), each exactly `length` tokens.
    data::GlobalBatch g;
    g.n_sequences = static_cast<int>(o.depths.size()) * o.trials;
    g.seq_len = length;
    g.tokens.resize(static_cast<std::size_t>(g.n_sequences) * length);
    g.segment_ids.assign(g.tokens.size(), 0);
    std::vector<std::vector<int>> answers(g.n_sequences);
    for (std::size_t d = 0; d < o.depths.size(); ++d)
      for (int t = 0; t < o.trials; ++t) {
        const int s = static_cast<int>(d) * o.trials + t;
        const auto doc = data::make_passkey_document(o.passkey, length, o.depths[d], o.seed,
                                                     (static_cast<uint64_t>(length) << 24) + s);
        std::copy(doc.tokens.begin(), doc.tokens.end(), g.tokens.begin() + static_cast<std::size_t>(s) * length);
        answers[s] = doc.answer_positions;
      }
    data::derive_targets_positions_weights(g);
    const data::LocalBatch batch = data::slice_global_batch(g, 1, 0, ring_size, ring_rank, o.layout);
    std::vector<float> logits(static_cast<std::size_t>(batch.token_count()) * vocab);
    model.forward(batch, logits.data());
    // Correct answer digits per document, over the ring: a digit at position p is predicted by
    // the logits of position p - 1, wherever that token lives.
    const auto local = local_token_indices(o.layout, length, ring_size, ring_rank);
    std::map<int64_t, int> local_index;
    for (std::size_t i = 0; i < local.size(); ++i) local_index[local[i]] = static_cast<int>(i);
    std::vector<double> correct_digits(g.n_sequences, 0.0);
    for (int s = 0; s < g.n_sequences; ++s)
      for (int p : answers[s]) {
        auto it = local_index.find(p - 1);
        if (it == local_index.end()) continue;
        const float* row = logits.data() + (static_cast<std::size_t>(s) * batch.n_local + it->second) * vocab;
        const int32_t predicted = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
        if (predicted == g.tokens[static_cast<std::size_t>(s) * length + p]) correct_digits[s] += 1;
      }
    reduce(correct_digits, context);
    for (std::size_t d = 0; d < o.depths.size(); ++d) {
      NeedleCell cell;
      cell.length = length;
      cell.depth = o.depths[d];
      cell.trials = o.trials;
      for (int t = 0; t < o.trials; ++t) {
        const int s = static_cast<int>(d) * o.trials + t;
        if (correct_digits[s] == static_cast<double>(answers[s].size())) ++cell.correct;
      }
      cells.push_back(cell);
    }
    if (progress) {
      int correct = 0, total = 0;
      for (const auto& c : cells)
        if (c.length == length) correct += c.correct, total += c.trials;
      char line[128];
      std::snprintf(line, sizeof line, "  length %6d: %d/%d answers exact", length, correct, total);
      progress(line);
    }
  }
  return cells;
}

std::string needle_table(const std::vector<NeedleCell>& cells) {
  std::vector<int> lengths;
  std::vector<double> depths;
  for (const auto& c : cells) {
    if (std::find(lengths.begin(), lengths.end(), c.length) == lengths.end()) lengths.push_back(c.length);
    if (std::find(depths.begin(), depths.end(), c.depth) == depths.end()) depths.push_back(c.depth);
  }
  std::ostringstream o;
  char buf[64];
  o << "depth \\ length";
  for (int l : lengths) {
    std::snprintf(buf, sizeof buf, "%8d", l);
    o << buf;
  }
  o << "\n";
  for (double d : depths) {
    std::snprintf(buf, sizeof buf, "%13.0f%%", d);
    o << buf;
    for (int l : lengths)
      for (const auto& c : cells)
        if (c.length == l && c.depth == d) {
          std::snprintf(buf, sizeof buf, "%8.2f", c.accuracy());
          o << buf;
        }
    o << "\n";
  }
  return o.str();
}

}  // namespace rw::infer
