// needle_report.cpp: see needle_report.h.
#include "src/cli/needle_report.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/run_directory.h"

namespace rw::cli {
namespace {

bool have_program(const char* name) {
  const std::string command = std::string("command -v ") + name + " > /dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

// A line of text as one line: newlines shown as \n.
std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

}  // namespace

void write_needle_csv(const std::string& path, const std::vector<infer::NeedleCell>& cells) {
  std::ostringstream out;
  out << "length,depth,trials,correct,accuracy\n";
  for (const auto& c : cells) out << c.length << "," << c.depth << "," << c.trials << "," << c.correct << "," << c.accuracy() << "\n";
  io::write_text_file_atomically(path, out.str());
}

std::string write_needle_png(const std::string& path, const std::vector<infer::NeedleCell>& cells,
                             const std::vector<int>& lengths, const std::vector<double>& depths,
                             const std::string& title) {
  if (!have_program("gnuplot")) return "skipped the PNG heatmap: gnuplot is not installed (apt-get install gnuplot-nox)";
  // Cells as a matrix: x = length index, y = depth index; gnuplot writes a temporary beside the
  // PNG, renamed over it when it succeeds.
  const std::string script = path + ".gp", tmp = path + ".tmp";
  std::ofstream gp(script);
  gp << "set terminal png size 720,420\nset output '" << tmp << "'\nset title '"
     << (title.empty() ? "needle retrieval accuracy" : title) << "'\nset xlabel 'context length'\nset ylabel 'needle depth (%)'\n"
     << "set cbrange [0:1]\nset palette defined (0 '#b2182b', 0.5 '#f7f7f7', 1 '#2166ac')\nset datafile separator ','\n"
     << "set xtics (";
  for (std::size_t i = 0; i < lengths.size(); ++i) gp << (i ? ", " : "") << "'" << lengths[i] << "' " << i;
  gp << ")\nset ytics (";
  for (std::size_t i = 0; i < depths.size(); ++i) gp << (i ? ", " : "") << "'" << depths[i] << "' " << i;
  gp << ")\nset xrange [-0.5:" << lengths.size() - 0.5 << "]\nset yrange [-0.5:" << depths.size() - 0.5 << "]\n$cells << EOD\n";
  for (std::size_t l = 0; l < lengths.size(); ++l)
    for (std::size_t d = 0; d < depths.size(); ++d)
      for (const auto& c : cells)
        if (c.length == lengths[l] && c.depth == depths[d]) gp << l << "," << d << "," << c.accuracy() << "\n";
  gp << "EOD\nplot $cells using 1:2:3 with image notitle, $cells using 1:2:(sprintf('%.2f',$3)) with labels notitle\n";
  gp.close();
  const std::string command = "gnuplot '" + script + "' 2>&1";
  const bool ok = std::system(command.c_str()) == 0 && std::rename(tmp.c_str(), path.c_str()) == 0;
  std::remove(script.c_str());
  if (!ok) {
    std::remove(tmp.c_str());
    return "gnuplot failed; no PNG";
  }
  return "wrote " + path;
}

std::string needle_answers_jsonl(const std::vector<infer::NeedleAnswer>& answers, const std::string& mode,
                                 bool text_task, const std::string& precision) {
  const char* key = text_task ? "city" : "name";
  const char* value = text_task ? "number" : "digits";
  std::string out;
  for (const auto& a : answers) {
    nlohmann::json j;
    j["mode"] = mode;
    j["task"] = text_task ? "text" : "passkey";
    j["precision"] = precision;
    j["length"] = a.length;
    j["depth"] = a.depth;
    j["trial"] = a.trial;
    j["prompt_tokens"] = a.prompt_tokens;
    nlohmann::json needles = nlohmann::json::array();
    for (const auto& n : a.needles)
      needles.push_back({{key, n.key}, {value, n.value}, {"depth_percent", n.depth_percent}, {"asked", n.asked}});
    j["needles"] = needles;
    if (!text_task) j["expected_tokens"] = a.expected_tokens;
    j["answer_tokens"] = a.answer_tokens;
    j["answer"] = a.answer;
    j["hits"] = a.hits;
    bool all = !a.hits.empty();
    for (bool h : a.hits) all = all && h;
    j["hit"] = all;
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  return out;
}

std::string needle_show_text(const std::vector<infer::NeedleAnswer>& answers, int count) {
  std::string out;
  for (int i = 0; i < count && i < static_cast<int>(answers.size()); ++i) {
    const auto& a = answers[static_cast<std::size_t>(i)];
    std::string expected;
    for (const auto& n : a.needles)
      if (n.asked) expected += (expected.empty() ? "" : ", ") + n.key + " " + n.value;
    int hits = 0;
    for (bool h : a.hits) hits += h ? 1 : 0;
    char head[160];
    std::snprintf(head, sizeof head, "  [length %d, depth %g%%, trial %d] prompt of %lld tokens ends: ", a.length,
                  a.depth, a.trial, static_cast<long long>(a.prompt_tokens));
    out += head + std::string("...") + one_line(a.prompt_tail) + "\n";
    out += "    answer: " + one_line(a.answer) + "\n";
    out += "    expected: " + expected + " (" + std::to_string(hits) + "/" + std::to_string(a.hits.size()) + " found)\n";
  }
  return out;
}

}  // namespace rw::cli
