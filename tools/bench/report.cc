#include "tools/bench/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "libs/logging/logging.h"

namespace cnet::bench {

void Samples::Merge(const Samples& other) {
  micros_.insert(micros_.end(), other.micros_.begin(), other.micros_.end());
  sorted_ = false;
}

double Samples::PercentileMicros(double p) const {
  if (micros_.empty()) return 0;
  if (!sorted_) {
    std::sort(micros_.begin(), micros_.end());
    sorted_ = true;
  }
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * micros_.size()));
  rank = std::clamp<size_t>(rank, 1, micros_.size());
  return micros_[rank - 1];
}

void Report::Missing(const std::string& workload, const std::string& name,
                     const std::string& why) {
  Figure f;
  f.workload = workload;
  f.name = name;
  f.available = false;
  f.note = why;
  figures_.push_back(std::move(f));
}

namespace {

std::string Number(double v) {
  if (v >= 1000) return absl::StrFormat("%.0f", v);
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.3g", v);
}

std::string ReadFirstLine(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  char buf[256] = {0};
  std::string out = fgets(buf, sizeof(buf), p) ? buf : "";
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

double MemTotalGiB() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (in >> key) {
    if (key == "MemTotal:") {
      in >> kb;
      break;
    }
    in.ignore(1 << 10, '\n');
  }
  return kb / (1024.0 * 1024.0);
}

}  // namespace

void Report::PrintTable() const {
  std::cout << absl::StrFormat("%-10s %-36s %14s  %-8s %-16s %-18s %s\n", "workload", "figure",
                               "value", "unit", "seed", "goal", "vs goal");
  for (const Figure& f : figures_) {
    if (!f.available) {
      std::cout << absl::StrFormat("%-10s %-36s %14s  %-8s %-16s %-18s %s\n", f.workload, f.name,
                                   "n/a", "", "", "", f.note);
      continue;
    }
    std::string ratio;
    if (f.goal_value > 0 && f.value > 0) {
      double r = f.higher_is_better ? f.value / f.goal_value : f.goal_value / f.value;
      ratio = absl::StrFormat("%.2fx %s", r, r >= 1 ? "(met)" : "(missed)");
    }
    if (baseline_rate_ > 0 && f.unit.find("/s") != std::string::npos && f.workload != "baseline") {
      absl::StrAppend(&ratio, absl::StrFormat("  %.1f%% of baseline", 100 * f.value / baseline_rate_));
    }
    std::cout << absl::StrFormat("%-10s %-36s %14s  %-8s %-16s %-18s %s\n", f.workload, f.name,
                                 Number(f.value), f.unit, f.seed, f.goal, ratio);
  }
}

std::string Report::Json() const {
  std::vector<std::string> figs;
  for (const Figure& f : figures_) {
    figs.push_back(absl::StrCat(
        "{\"workload\":\"", JsonEscape(f.workload), "\",\"name\":\"", JsonEscape(f.name),
        "\",\"available\":", f.available ? "true" : "false", ",\"value\":",
        f.available ? absl::StrFormat("%.6g", f.value) : "null", ",\"unit\":\"",
        JsonEscape(f.unit), "\",\"higher_is_better\":", f.higher_is_better ? "true" : "false",
        ",\"seed\":\"", JsonEscape(f.seed), "\",\"goal\":\"", JsonEscape(f.goal),
        "\",\"note\":\"", JsonEscape(f.note), "\"}"));
  }
  std::vector<std::string> params;
  for (const auto& [k, v] : params_) {
    params.push_back(absl::StrCat("\"", JsonEscape(k), "\":\"", JsonEscape(v), "\""));
  }
  std::string commit = ReadFirstLine("git rev-parse HEAD 2>/dev/null");
  return absl::StrCat(
      "{\"machine\":{\"cores\":", sysconf(_SC_NPROCESSORS_ONLN), ",\"memory_gib\":",
      absl::StrFormat("%.1f", MemTotalGiB()), ",\"kernel\":\"",
      JsonEscape(ReadFirstLine("uname -r")), "\"},\"commit\":\"", JsonEscape(commit),
      "\",\"parameters\":{", absl::StrJoin(params, ","), "},\"figures\":[",
      absl::StrJoin(figs, ","), "]}\n");
}

double RssMiB(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      in >> kb;
      return kb / 1024.0;
    }
    in.ignore(1 << 12, '\n');
  }
  return 0;
}

}  // namespace cnet::bench
