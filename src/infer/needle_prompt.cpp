// needle_prompt.cpp
#include "src/infer/needle_prompt.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <set>
#include <unordered_map>

#include "src/common/input_error.h"
#include "src/infer/sampling.h"

namespace rw::infer {
namespace {

const char* const kPromptHead = "You are a helpful assistant. USER: ";
const char* const kPromptTail =
    " Don't give information outside the document or repeat your findings. Keep your response short and direct. "
    "ASSISTANT: ";

uint64_t mix64(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform draws of task `index` of the stream seeded `seed`: independent keys per index.
struct Draw {
  uint64_t key, counter = 0;
  Draw(uint64_t seed, uint64_t index) : key(mix64(seed ^ mix64(index + 0x9e3779b97f4a7c15ull))) {}
  double uniform() { return sampling_uniform(key, counter++); }
  int64_t below(int64_t n) { return std::min<int64_t>(n - 1, static_cast<int64_t>(uniform() * n)); }
};

// One attempt at a given haystack room; see build_needle_prompt.
NeedlePrompt assemble(const NeedleTask& task, const std::vector<int32_t>& haystack, const data::Tokenizer& tokenizer,
                      int64_t room, std::unordered_map<int32_t, bool>& ends_sentence) {
  std::vector<int32_t> h(static_cast<std::size_t>(room));
  for (int64_t i = 0; i < room; ++i) h[i] = haystack[static_cast<std::size_t>(i) % haystack.size()];
  const std::string full = tokenizer.decode(h);
  const auto is_break = [&](int32_t id) {
    const auto it = ends_sentence.find(id);
    if (it != ends_sentence.end()) return it->second;
    std::string piece = tokenizer.decode({id});
    while (!piece.empty() && std::isspace(static_cast<unsigned char>(piece.back()))) piece.pop_back();
    return ends_sentence[id] = !piece.empty() && piece.back() == '.';
  };
  const std::size_t n = task.needles.size();
  NeedlePrompt out;
  out.haystack_tokens = room;
  out.needle_at.resize(n);
  std::vector<std::size_t> offset(n);  // characters of `full` before each needle
  for (std::size_t i = 0; i < n; ++i) {
    const double depth = task.needles[i].depth_percent;
    int64_t at = room;  // depth 100: the very end, as LWM
    if (depth < 100) {
      at = static_cast<int64_t>(std::floor(room * depth / 100.0));
      int64_t back = at;
      while (back > 0 && !is_break(h[back - 1])) --back;
      if (back > 0) at = back;  // no period before the point: keep the point
    }
    // The characters of the tokens before `at`: a prefix of the whole decoded text except where
    // `at` splits one character's bytes (byte fallback); then back to the character's start.
    std::string before;
    while (true) {
      before = at == room ? full : tokenizer.decode(std::vector<int32_t>(h.begin(), h.begin() + at));
      if (at == 0 || full.compare(0, before.size(), before) == 0) break;
      --at;
    }
    out.needle_at[i] = at;
    offset[i] = before.size();
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return offset[a] < offset[b]; });
  std::string context;
  std::size_t copied = 0;
  for (std::size_t i : order) {
    context.append(full, copied, offset[i] - copied);
    context += needle_text(task.needles[i]);
    copied = offset[i];
  }
  context.append(full, copied, std::string::npos);
  out.text = needle_prompt_text(context, needle_question(task));
  if (tokenizer.bos_id() >= 0) out.ids.push_back(tokenizer.bos_id());
  const std::vector<int32_t> ids = tokenizer.encode(out.text);
  out.ids.insert(out.ids.end(), ids.begin(), ids.end());
  for (std::size_t i = 0; i < n; ++i)
    out.needle_depth_percent.push_back(room ? 100.0 * static_cast<double>(out.needle_at[i]) / room : 0.0);
  return out;
}

}  // namespace

const std::vector<std::string>& needle_cities() {
  static const std::vector<std::string> cities = {
      "Amsterdam", "Athens",    "Bangkok",   "Barcelona", "Beirut",       "Berlin",    "Bogota",        "Brussels",
      "Budapest",  "Buenos Aires", "Cairo",  "Cape Town", "Chicago",      "Copenhagen", "Dakar",        "Delhi",
      "Dublin",    "Hanoi",     "Helsinki",  "Istanbul",  "Jakarta",      "Kampala",   "Kyoto",         "Lagos",
      "Lima",      "Lisbon",    "Los Angeles", "Madrid",  "Manila",       "Melbourne", "Mexico City",   "Montreal",
      "Moscow",    "Mumbai",    "Nairobi",   "Oslo",      "Paris",        "Prague",    "Quito",         "Rome",
      "San Francisco", "Santiago", "Seoul",  "Shanghai",  "Singapore",    "Stockholm", "Sydney",        "Tokyo",
      "Toronto",   "Vienna",    "Warsaw",    "Zurich"};
  return cities;
}

NeedleTask draw_needle_task(int n_needles, int n_asked, double depth_percent, uint64_t seed, uint64_t index) {
  const int n_cities = static_cast<int>(needle_cities().size());
  if (n_needles < 1 || n_needles > n_cities)
    throw InputError("needles: between 1 and " + std::to_string(n_cities) + " per prompt, got " +
                     std::to_string(n_needles));
  if (n_asked < 1 || n_asked > n_needles)
    throw InputError("needles asked: between 1 and the needles (" + std::to_string(n_needles) + "), got " +
                     std::to_string(n_asked));
  if (!(depth_percent >= 0 && depth_percent <= 100))
    throw InputError("needle depth: a percent in [0, 100], got " + std::to_string(depth_percent));
  Draw d(seed, index);
  std::vector<int> pool(n_cities);
  std::iota(pool.begin(), pool.end(), 0);
  NeedleTask task;
  task.asked = n_asked;
  for (int i = 0; i < n_needles; ++i) {
    std::swap(pool[i], pool[i + d.below(n_cities - i)]);  // partial Fisher-Yates: distinct cities
    Needle needle;
    needle.city = needle_cities()[pool[i]];
    needle.number = std::to_string(1000000 + d.below(9000000));
    needle.depth_percent = i == 0 ? depth_percent : 100.0 * d.uniform();
    task.needles.push_back(needle);
  }
  return task;
}

std::string needle_text(const Needle& needle) {
  return "\nThe special magic " + needle.city + " number is: " + needle.number + "\n";
}

std::string needle_question(const NeedleTask& task) {
  if (task.asked == 1) return "What is the special magic " + task.needles[0].city + " number?";
  std::string cities;
  for (int i = 0; i < task.asked; ++i)
    cities += (i == 0 ? "" : i + 1 == task.asked ? ", and " : ", ") + task.needles[i].city;
  return "What are the special magic numbers for " + cities + "?";
}

std::string needle_prompt_text(const std::string& context, const std::string& question) {
  return kPromptHead + context + " " + question + kPromptTail;
}

NeedlePrompt build_needle_prompt(const NeedleTask& task, const std::vector<int32_t>& haystack,
                                 const data::Tokenizer& tokenizer, int64_t target_tokens) {
  if (haystack.empty()) throw InputError("needle prompt: the haystack has no tokens");
  if (task.needles.empty() || task.asked < 1 || task.asked > static_cast<int>(task.needles.size()))
    throw InputError("needle prompt: a task needs needles and 1..needles asked");
  // The first room: the target less the tokens of everything but the haystack, counted apart.
  int64_t fixed = (tokenizer.bos_id() >= 0 ? 1 : 0) + static_cast<int64_t>(tokenizer.encode(kPromptHead).size()) +
                  static_cast<int64_t>(tokenizer.encode(" " + needle_question(task) + kPromptTail).size());
  for (const Needle& needle : task.needles) fixed += static_cast<int64_t>(tokenizer.encode(needle_text(needle)).size());
  const std::string too_short = "needle prompt: " + std::to_string(target_tokens) +
                                " tokens leave no room for the haystack (the template, question and needles take " +
                                std::to_string(fixed) + "; use at least " + std::to_string(fixed + 16) + ")";
  int64_t room = target_tokens - fixed;
  if (room < 1) throw InputError(too_short);
  // Tokens at the joins differ from the parts' counts by a few: adjust the room by the miss
  // until the prompt has target_tokens or the best below it stops improving.
  std::unordered_map<int32_t, bool> ends_sentence;
  std::set<int64_t> tried;
  NeedlePrompt best;
  bool have_best = false;
  for (int attempt = 0; attempt < 32 && room >= 1 && tried.insert(room).second; ++attempt) {
    NeedlePrompt p = assemble(task, haystack, tokenizer, room, ends_sentence);
    const int64_t n = static_cast<int64_t>(p.ids.size());
    if (n <= target_tokens && (!have_best || n > static_cast<int64_t>(best.ids.size()))) {
      best = std::move(p);
      have_best = true;
    }
    if (n == target_tokens) break;
    room += n > target_tokens ? -std::max<int64_t>(1, n - target_tokens) : target_tokens - n;
  }
  if (!have_best) throw InputError(too_short);
  return best;
}

std::vector<bool> score_needle_answer(const NeedleTask& task, const std::string& answer) {
  std::vector<bool> hits;
  for (int i = 0; i < task.asked; ++i) hits.push_back(answer.find(task.needles[i].number) != std::string::npos);
  return hits;
}

}  // namespace rw::infer
