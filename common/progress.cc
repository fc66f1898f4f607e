#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_format.h"

namespace wf {

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) {
    bytes /= 1000;
    ++u;
  }
  return absl::StrFormat("%.1f %s", bytes, units[u]);
}

ProgressPrinter::ProgressPrinter(std::string label, double interval_seconds)
    : label_(std::move(label)),
      interval_seconds_(interval_seconds),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

void ProgressPrinter::Update(uint64_t done, uint64_t total, std::string_view detail) {
  done_ = done;
  total_ = total;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  // A terminal redraws often; a log gets a line every interval.
  if (since < (tty_ ? 0.1 : interval_seconds_)) return;
  last_print_ = now;
  Print(false, detail);
}

void ProgressPrinter::Finish(std::string_view detail) { Print(true, detail); }

void ProgressPrinter::Print(bool final_line, std::string_view detail) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
  const int pct = total_ > 0 ? static_cast<int>(100.0 * static_cast<double>(done_) / static_cast<double>(total_)) : 100;
  const std::string line =
      absl::StrFormat("%s: %s / %s (%3d%%) %s/s %.1fs %s", label_, HumanBytes(static_cast<double>(done_)),
                      HumanBytes(static_cast<double>(total_)), pct, HumanBytes(rate), elapsed, std::string(detail));
  if (tty_) {
    std::fprintf(stderr, "\r%-100s%s", line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
  printed_ = true;
}

}  // namespace wf
