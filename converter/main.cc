// wf_convert: Hugging Face BitNet checkpoints -> GGUF, synthetic checkpoints,
// Hugging Face hub downloads, and GGUF inspection.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <memory>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/progress.h"
#include "common/gguf/gguf_reader.h"
#include "converter/convert.h"
#include "converter/hub_fetch.h"
#include "converter/synth.h"

namespace {

using wf::convert::ConvertOptions;

constexpr char kUsage[] =
    "wf_convert: Hugging Face BitNet b1.58 checkpoints to GGUF (bitnet.cpp-compatible).\n"
    "\n"
    "Usage:\n"
    "  wf_convert CHECKPOINT_DIR --outfile FILE.gguf [--outtype TYPE] [--name NAME]\n"
    "  wf_convert --hf-repo OWNER/NAME [--revision REV] [--download-dir DIR] --outfile FILE.gguf\n"
    "             [--outtype TYPE] [--name NAME]\n"
    "  wf_convert synth --preset tiny|2b4t --out DIR [--seed N] [--tokenizer tokenizer.json]\n"
    "             [--hidden N] [--layers N] [--heads N] [--kv-heads N] [--ffn N] [--vocab N] [--ctx N]\n"
    "             [--shard-mb N]\n"
    "  wf_convert inspect FILE.gguf [--all]\n"
    "  wf_convert [COMMAND] --help\n"
    "\n"
    "Convert options:\n"
    "  --outfile FILE     output GGUF; written to FILE.partial-PID and renamed when complete\n"
    "  --outtype TYPE     i2_s (default; bitnet.cpp's ternary format), tq1_0, tq2_0, f16, bf16, f32\n"
    "  --name NAME        general.name (default: the checkpoint directory's name)\n"
    "  --quiet            no progress on stderr\n"
    "\n"
    "Hub options (a repository holding a .gguf file is downloaded as is, otherwise the\n"
    "checkpoint is downloaded and converted):\n"
    "  --hf-repo OWNER/NAME   repository on the Hugging Face hub\n"
    "  --revision REV         branch, tag or commit (default: main)\n"
    "  --hf-file NAME         the .gguf file to take when a repository holds several\n"
    "  --download-dir DIR     where files go (default: ./models/hf/OWNER/NAME); partial\n"
    "                         downloads there are resumed\n"
    "  Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (bearer token).\n"
    "\n"
    "Synth options: a random-weight checkpoint of the real architecture (bf16), for tests and\n"
    "benchmarks. tiny = hidden 256, 4 layers, 4/2 heads, FFN 768, vocab 2048; 2b4t = the exact\n"
    "BitNet-b1.58-2B-4T shape. Without --tokenizer a small byte-level BPE is generated.\n"
    "\n"
    "Exit status: 0 on success, 1 on bad input or failure (the message names the problem), 2 on\n"
    "bad usage.\n";

std::string g_partial_path;  // Removed if a signal interrupts the conversion.

void OnSignal(int sig) {
  if (!g_partial_path.empty()) ::unlink(g_partial_path.c_str());
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

int Usage(const std::string& error) {
  std::fprintf(stderr, "wf_convert: %s\nRun 'wf_convert --help' for usage.\n", error.c_str());
  return 2;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "wf_convert: error: %s\n", std::string(s.message()).c_str());
  return 1;
}

// Minimal flag reader: "--key value" or "--key=value"; bare words are positionals.
struct Args {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> flags;
  std::vector<std::string> switches;
  std::string error;

  static Args Parse(int argc, char** argv, int first, const std::vector<std::string>& switch_names) {
    Args a;
    for (int i = first; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0 || arg == "--") {
        a.positional.push_back(arg);
        continue;
      }
      std::string key = arg.substr(2), value;
      const size_t eq = key.find('=');
      const bool is_switch = std::find(switch_names.begin(), switch_names.end(), key) != switch_names.end();
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (is_switch) {
        a.switches.push_back(key);
        continue;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        a.error = "flag --" + key + " needs a value";
        return a;
      }
      a.flags.emplace_back(key, value);
    }
    return a;
  }
  bool Has(const std::string& k) const {
    return std::find(switches.begin(), switches.end(), k) != switches.end();
  }
  std::string Get(const std::string& k, const std::string& def = "") const {
    for (const auto& [key, value] : flags) {
      if (key == k) return value;
    }
    return def;
  }
  // Names the first flag not in `known`, or "".
  std::string Unknown(const std::vector<std::string>& known) const {
    for (const auto& [key, value] : flags) {
      if (std::find(known.begin(), known.end(), key) == known.end()) return key;
    }
    return "";
  }
};

bool ParseCount(const Args& a, const std::string& key, int64_t* out, std::string* error) {
  const std::string v = a.Get(key);
  if (v.empty()) return true;
  if (!absl::SimpleAtoi(v, out) || *out <= 0) {
    *error = absl::StrFormat("--%s must be a positive integer, got '%s'", key, v);
    return false;
  }
  return true;
}

int RunConvert(ConvertOptions options, bool quiet) {
  if (!quiet) {
    auto printer = std::make_shared<wf::ProgressPrinter>("convert");
    options.progress = [printer](const wf::convert::ConvertProgress& p) {
      const std::string detail = absl::StrFormat("[%d/%d] %s", p.tensor_index, p.tensor_count, p.tensor_name);
      if (p.tensor_index == p.tensor_count) {
        printer->Update(p.bytes_read, p.bytes_total);
        printer->Finish(detail);
      } else {
        printer->Update(p.bytes_read, p.bytes_total, detail);
      }
    };
  }
  g_partial_path = wf::PartialPathFor(options.outfile);
  auto report = wf::convert::ConvertCheckpoint(options);
  g_partial_path.clear();
  if (!report.ok()) {
    if (!quiet) std::fputc('\n', stderr);
    return Fail(report.status());
  }
  std::printf("wrote %s: %s, %d tensors, %d metadata keys, %s in %.1f s%s\n", options.outfile.c_str(),
              std::string(wf::convert::OutTypeName(options.outtype)).c_str(), report->tensor_count,
              report->metadata_count, wf::HumanBytes(report->output_bytes).c_str(), report->seconds,
              report->packed_input ? " (packed ternary input)" : "");
  return 0;
}

int CmdSynth(int argc, char** argv) {
  Args a = Args::Parse(argc, argv, 2, {"help", "quiet"});
  if (a.Has("help")) return std::fputs(kUsage, stdout), 0;
  if (!a.error.empty()) return Usage(a.error);
  const std::string unknown = a.Unknown({"preset", "out", "seed", "tokenizer", "hidden", "layers", "heads",
                                         "kv-heads", "ffn", "vocab", "ctx", "shard-mb"});
  if (!unknown.empty()) return Usage("unknown flag --" + unknown + " for synth");
  if (!a.positional.empty()) return Usage("unexpected argument '" + a.positional[0] + "'");
  if (a.Get("out").empty()) return Usage("synth needs --out DIR");
  auto shape = wf::convert::PresetShape(a.Get("preset", "tiny"));
  if (!shape.ok()) return Usage(std::string(shape.status().message()));
  wf::convert::SynthOptions o;
  o.shape = *shape;
  o.out_dir = a.Get("out");
  o.tokenizer_json = a.Get("tokenizer");
  std::string error;
  int64_t seed = 0, shard_mb = 0;
  if (!a.Get("seed").empty() && !absl::SimpleAtoi(a.Get("seed"), &seed)) {
    return Usage("--seed must be an integer, got '" + a.Get("seed") + "'");
  }
  o.seed = static_cast<uint64_t>(seed);
  if (!ParseCount(a, "hidden", &o.shape.hidden, &error) || !ParseCount(a, "layers", &o.shape.layers, &error) ||
      !ParseCount(a, "heads", &o.shape.heads, &error) || !ParseCount(a, "kv-heads", &o.shape.kv_heads, &error) ||
      !ParseCount(a, "ffn", &o.shape.ffn, &error) || !ParseCount(a, "vocab", &o.shape.vocab, &error) ||
      !ParseCount(a, "ctx", &o.shape.ctx, &error) || !ParseCount(a, "shard-mb", &shard_mb, &error)) {
    return Usage(error);
  }
  if (shard_mb > 0) o.shard_bytes = static_cast<uint64_t>(shard_mb) << 20;
  if (!a.Has("quiet")) {
    auto printer = std::make_shared<wf::ProgressPrinter>("synth");
    o.progress = [printer](uint64_t done, uint64_t total) {
      printer->Update(done, total);
      if (done == total) printer->Finish();
    };
  }
  auto report = wf::convert::WriteSyntheticCheckpoint(o);
  if (!report.ok()) return Fail(report.status());
  const auto& s = report->shape;
  std::printf("wrote synthetic checkpoint %s: hidden %lld, %lld layers, %lld/%lld heads, ffn %lld, vocab %lld, "
              "%s of bf16 weights in %d file(s)\n",
              o.out_dir.c_str(), (long long)s.hidden, (long long)s.layers, (long long)s.heads,
              (long long)s.kv_heads, (long long)s.ffn, (long long)s.vocab,
              wf::HumanBytes(report->weight_bytes).c_str(), report->shard_count);
  return 0;
}

int CmdInspect(int argc, char** argv) {
  Args a = Args::Parse(argc, argv, 2, {"help", "all"});
  if (a.Has("help")) return std::fputs(kUsage, stdout), 0;
  if (!a.error.empty()) return Usage(a.error);
  if (a.positional.size() != 1) return Usage("inspect needs exactly one GGUF file");
  auto file = wf::gguf::GgufFile::Open(a.positional[0]);
  if (!file.ok()) return Fail(file.status());
  const auto& f = **file;
  std::printf("%s: GGUF v%u, %zu metadata keys, %zu tensors, alignment %u, %s\n", a.positional[0].c_str(),
              f.version(), f.metadata().size(), f.tensors().size(), f.alignment(),
              wf::HumanBytes(static_cast<double>(f.size())).c_str());
  const size_t limit = a.Has("all") ? static_cast<size_t>(-1) : 4;
  for (const auto& kv : f.metadata()) {
    std::printf("  %-48s %s\n", kv.key.c_str(), kv.value.DebugString(limit).c_str());
  }
  size_t shown = 0;
  for (const auto& t : f.tensors()) {
    if (!a.Has("all") && shown++ >= 16) {
      std::printf("  ... %zu more tensors (--all shows every one)\n", f.tensors().size() - 16);
      break;
    }
    std::string ne;
    for (int64_t d : t.dims()) ne += (ne.empty() ? "" : ", ") + std::to_string(d);
    std::printf("  %-32s %-6s [%s]\n", t.name.c_str(), std::string(wf::gguf::GgmlTypeName(t.type)).c_str(),
                ne.c_str());
  }
  return 0;
}

int CmdConvert(int argc, char** argv) {
  Args a = Args::Parse(argc, argv, 1, {"help", "quiet"});
  if (a.Has("help")) return std::fputs(kUsage, stdout), 0;
  if (!a.error.empty()) return Usage(a.error);
  const std::string unknown =
      a.Unknown({"outfile", "outtype", "name", "hf-repo", "revision", "hf-file", "download-dir"});
  if (!unknown.empty()) return Usage("unknown flag --" + unknown);
  ConvertOptions o;
  o.outfile = a.Get("outfile");
  o.name = a.Get("name");
  auto outtype = wf::convert::ParseOutType(a.Get("outtype", "i2_s"));
  if (!outtype.ok()) return Usage(std::string(outtype.status().message()));
  o.outtype = *outtype;
  if (o.outfile.empty()) return Usage("--outfile is required");
  const std::string repo = a.Get("hf-repo");
  if (repo.empty()) {
    if (a.positional.size() != 1) return Usage("give exactly one CHECKPOINT_DIR (or --hf-repo)");
    o.checkpoint_dir = a.positional[0];
    return RunConvert(o, a.Has("quiet"));
  }
  if (!a.positional.empty()) return Usage("give either CHECKPOINT_DIR or --hf-repo, not both");
  wf::convert::HubRequest req;
  req.repo = repo;
  req.revision = a.Get("revision", "main");
  req.gguf_file = a.Get("hf-file");
  req.download_dir = a.Get("download-dir", "models/hf/" + repo);
  if (!a.Has("quiet")) {
    auto printer = std::make_shared<wf::ProgressPrinter>("download");
    req.progress = [printer](const wf::convert::HubProgress& p) {
      printer->Update(p.bytes_done, p.bytes_total, p.file);
      if (p.file_done) printer->Finish(p.skipped ? p.file + " (already present)" : p.file);
    };
  }
  auto fetched = wf::convert::FetchModel(req, o.outfile);
  if (!fetched.ok()) return Fail(fetched.status());
  if (fetched->gguf_copied) {
    std::printf("wrote %s (downloaded %s from %s)\n", o.outfile.c_str(), fetched->gguf_file.c_str(), repo.c_str());
    return 0;
  }
  o.checkpoint_dir = req.download_dir;
  if (o.name.empty()) o.name = repo.substr(repo.find('/') + 1);
  return RunConvert(o, a.Has("quiet"));
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGHUP, OnSignal);
  if (argc < 2) return Usage("missing arguments");
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") return std::fputs(kUsage, stdout), 0;
  if (cmd == "synth") return CmdSynth(argc, argv);
  if (cmd == "inspect") return CmdInspect(argc, argv);
  return CmdConvert(argc, argv);
}
