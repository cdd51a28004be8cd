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
#include "src/data/passkey_tokenizer.h"

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

data::PasskeyDocument needle_passkey_document(const NeedleEvalOptions& o, int length, int depth_index, int trial) {
  const int s = depth_index * o.trials + trial;
  return data::make_passkey_document(o.passkey, length, o.depths[static_cast<std::size_t>(depth_index)], o.seed,
                                     (static_cast<uint64_t>(length) << 24) + static_cast<uint64_t>(s));
}

NeedleAnswer passkey_answer(const data::PasskeyDocument& doc, const data::PasskeyOptions& passkey, int length,
                            double depth, int trial, const std::vector<int32_t>& answer_tokens) {
  const data::PasskeyTokenizer words(passkey.vocab_size);
  NeedleAnswer a;
  a.length = length;
  a.depth = depth;
  a.trial = trial;
  a.prompt_tokens = doc.answer_positions.empty() ? length : doc.answer_positions[0];
  const int64_t tail_from = std::max<int64_t>(0, a.prompt_tokens - NeedleAnswer::kTailTokens);
  a.prompt_tail = words.decode(std::vector<int32_t>(doc.tokens.begin() + tail_from, doc.tokens.begin() + a.prompt_tokens));
  for (std::size_t n = 0; n < doc.needle_positions.size(); ++n) {
    const int at = doc.needle_positions[n];  // <key> NAME <is> digits
    NeedleSlot slot;
    slot.key = words.word(doc.tokens[static_cast<std::size_t>(at) + 1]);
    for (int i = 0; i < passkey.digits; ++i) slot.value += words.word(doc.tokens[static_cast<std::size_t>(at) + 3 + i]);
    slot.depth_percent = 100.0 * at / length;
    slot.asked = static_cast<int>(n) < passkey.asked;
    a.needles.push_back(slot);
  }
  for (int p : doc.answer_positions) a.expected_tokens.push_back(doc.tokens[static_cast<std::size_t>(p)]);
  a.answer_tokens = answer_tokens;
  for (int q = 0; q < passkey.asked; ++q) {
    bool hit = true;
    std::vector<int32_t> mine;
    for (int i = 0; i < passkey.digits; ++i) {
      const std::size_t k = static_cast<std::size_t>(q) * passkey.digits + i;
      const int32_t token = k < answer_tokens.size() ? answer_tokens[k] : -1;
      if (token >= 0) mine.push_back(token);
      hit = hit && token == a.expected_tokens[k];
    }
    a.hits.push_back(hit);
    a.answer += (q ? " / " : "") + words.decode(mine);
  }
  return a;
}

std::vector<NeedleCell> evaluate_needles(model::Transformer& model, const NeedleEvalOptions& o, int ring_size,
                                         int ring_rank, void (*reduce)(std::vector<double>&, void*), void* context,
                                         void (*progress)(const std::string&), std::vector<NeedleAnswer>* answers) {
  std::vector<NeedleCell> cells;
  // A logits row holds every id (text then vision columns); the answer is a text token.
  const int64_t vocab = model.config().total_vocab_size(), text_vocab = model.config().vocab_size;
  for (int length : o.lengths) {
    check_ring_split(o.layout, length, ring_size);
    // One document per (depth, trial), each exactly `length` tokens.
    data::GlobalBatch g;
    g.n_sequences = static_cast<int>(o.depths.size()) * o.trials;
    g.seq_len = length;
    g.tokens.resize(static_cast<std::size_t>(g.n_sequences) * length);
    g.segment_ids.assign(g.tokens.size(), 0);
    std::vector<data::PasskeyDocument> docs;
    for (std::size_t d = 0; d < o.depths.size(); ++d)
      for (int t = 0; t < o.trials; ++t) {
        const int s = static_cast<int>(d) * o.trials + t;
        docs.push_back(needle_passkey_document(o, length, static_cast<int>(d), t));
        std::copy(docs.back().tokens.begin(), docs.back().tokens.end(),
                  g.tokens.begin() + static_cast<std::size_t>(s) * length);
      }
    data::derive_targets_positions_weights(g);
    const data::LocalBatch batch = data::slice_global_batch(g, 1, 0, ring_size, ring_rank, o.layout);
    std::vector<float> logits(static_cast<std::size_t>(batch.token_count()) * vocab);
    model.forward(batch, logits.data());
    // The argmax at every answer digit, over the ring: a digit at position p is predicted by the
    // logits of position p - 1, which exactly one rank holds (the others add 0).
    const auto local = local_token_indices(o.layout, length, ring_size, ring_rank);
    std::map<int64_t, int> local_index;
    for (std::size_t i = 0; i < local.size(); ++i) local_index[local[i]] = static_cast<int>(i);
    const std::size_t per_doc = docs.empty() ? 0 : docs[0].answer_positions.size();
    std::vector<double> predicted(static_cast<std::size_t>(g.n_sequences) * per_doc, 0.0);
    for (int s = 0; s < g.n_sequences; ++s)
      for (std::size_t k = 0; k < per_doc; ++k) {
        auto it = local_index.find(docs[static_cast<std::size_t>(s)].answer_positions[k] - 1);
        if (it == local_index.end()) continue;
        const float* row = logits.data() + (static_cast<std::size_t>(s) * batch.n_local + it->second) * vocab;
        predicted[static_cast<std::size_t>(s) * per_doc + k] = static_cast<double>(std::max_element(row, row + text_vocab) - row);
      }
    reduce(predicted, context);
    for (std::size_t d = 0; d < o.depths.size(); ++d) {
      NeedleCell cell;
      cell.length = length;
      cell.depth = o.depths[d];
      cell.trials = o.trials;
      for (int t = 0; t < o.trials; ++t) {
        const int s = static_cast<int>(d) * o.trials + t;
        const data::PasskeyDocument& doc = docs[static_cast<std::size_t>(s)];
        std::vector<int32_t> tokens(per_doc);
        bool exact = true;
        for (std::size_t k = 0; k < per_doc; ++k) {
          tokens[k] = static_cast<int32_t>(predicted[static_cast<std::size_t>(s) * per_doc + k]);
          exact = exact && tokens[k] == doc.tokens[static_cast<std::size_t>(doc.answer_positions[k])];
        }
        if (exact) ++cell.correct;
        if (answers) answers->push_back(passkey_answer(doc, o.passkey, length, o.depths[d], t, tokens));
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
