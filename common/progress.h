// Progress lines for long work (conversion, downloads, model load, benchmarks).
//
// On a terminal the line is redrawn in place; otherwise (logs, CI) a new line
// is printed at most every `interval_seconds` and at the end, so logs stay short.
//
// Example:
//   ProgressPrinter progress("convert", 2.0);
//   progress.Update(done, total, "blk.3.ffn_up.weight");
//   progress.Finish();
#ifndef WF_COMMON_PROGRESS_H_
#define WF_COMMON_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace wf {

// "1.2 GB", "350.0 MB" (decimal units).
std::string HumanBytes(double bytes);

// Not thread-safe: one printer per task, updated from one thread.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(std::string label, double interval_seconds = 2.0);
  // Prints "label: done / total (pct%) rate/s detail" when due.
  void Update(uint64_t done, uint64_t total, std::string_view detail = {});
  // Prints the final line (always).
  void Finish(std::string_view detail = {});

 private:
  void Print(bool final_line, std::string_view detail);

  std::string label_;
  double interval_seconds_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  uint64_t done_ = 0;
  uint64_t total_ = 0;
  bool printed_ = false;
};

}  // namespace wf

#endif  // WF_COMMON_PROGRESS_H_
