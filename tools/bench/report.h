// Figures, their summary statistics, and the report: one table on stdout
// and one JSON document with every figure, the machine, the commit and the
// parameters.
#ifndef CNET_TOOLS_BENCH_REPORT_H_
#define CNET_TOOLS_BENCH_REPORT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace cnet::bench {

// Latency samples; percentiles by nearest rank.
class Samples {
 public:
  void Add(absl::Duration d) { micros_.push_back(absl::ToDoubleMicroseconds(d)); }
  void Merge(const Samples& other);
  size_t size() const { return micros_.size(); }
  // p in [0, 100]; microseconds. 0 when empty.
  double PercentileMicros(double p) const;

 private:
  mutable std::vector<double> micros_;
  mutable bool sorted_ = false;
};

struct Figure {
  std::string workload;  // "baseline", "macs", ...
  std::string name;      // "unary p99", ...
  double value = 0;
  std::string unit;             // "us", "ms", "req/s", "MiB", "s"
  bool higher_is_better = true;
  std::string seed;             // the seed's promise, as text ("" = none)
  std::string goal;             // the project goal, as text
  double goal_value = 0;        // for the ratio column; 0 = none
  std::string note;             // what bounds it, or why it is missing
  bool available = true;
};

class Report {
 public:
  void Add(Figure f) { figures_.push_back(std::move(f)); }
  void Missing(const std::string& workload, const std::string& name, const std::string& why);
  void SetParameter(const std::string& key, const std::string& value) { params_[key] = value; }
  // Baseline unary throughput, for the "x of baseline" column of req/s figures.
  void SetBaselineRate(double per_second) { baseline_rate_ = per_second; }

  void PrintTable() const;
  std::string Json() const;
  const std::vector<Figure>& figures() const { return figures_; }

 private:
  std::vector<Figure> figures_;
  std::map<std::string, std::string> params_;
  double baseline_rate_ = 0;
};

// Resident set size of a process from /proc/<pid>/status, MiB (0 if gone).
double RssMiB(int pid);

}  // namespace cnet::bench

#endif  // CNET_TOOLS_BENCH_REPORT_H_
