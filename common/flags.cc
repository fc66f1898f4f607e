#include "common/flags.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace wf {

void FlagSet::String(std::string name, std::string* target, std::string help, std::string alias) {
  flags_.push_back({std::move(name), std::move(alias), Kind::kString, target, std::move(help),
                    target->empty() ? "" : "\"" + *target + "\""});
}
void FlagSet::Int(std::string name, int64_t* target, std::string help, std::string alias) {
  flags_.push_back({std::move(name), std::move(alias), Kind::kInt, target, std::move(help), absl::StrCat(*target)});
}
void FlagSet::Double(std::string name, double* target, std::string help, std::string alias) {
  flags_.push_back({std::move(name), std::move(alias), Kind::kDouble, target, std::move(help),
                    absl::StrFormat("%g", *target)});
}
void FlagSet::Bool(std::string name, bool* target, std::string help, std::string alias) {
  flags_.push_back({std::move(name), std::move(alias), Kind::kBool, target, std::move(help),
                    *target ? "true" : "false"});
}
void FlagSet::StringList(std::string name, std::vector<std::string>* target, std::string help) {
  flags_.push_back({std::move(name), "", Kind::kStringList, target, std::move(help), ""});
}

FlagSet::Flag* FlagSet::Find(const std::string& name) {
  for (Flag& f : flags_) {
    if (f.name == name || (!f.alias.empty() && f.alias == name)) return &f;
  }
  return nullptr;
}

bool FlagSet::WasSet(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return f.set;
  }
  return false;
}

absl::Status FlagSet::Assign(Flag& f, const std::string& value) {
  f.set = true;
  switch (f.kind) {
    case Kind::kString:
      *static_cast<std::string*>(f.target) = value;
      return absl::OkStatus();
    case Kind::kStringList:
      static_cast<std::vector<std::string>*>(f.target)->push_back(value);
      return absl::OkStatus();
    case Kind::kInt:
      if (!absl::SimpleAtoi(value, static_cast<int64_t*>(f.target))) {
        return absl::InvalidArgumentError(absl::StrCat("--", f.name, " needs an integer, got '", value, "'"));
      }
      return absl::OkStatus();
    case Kind::kDouble: {
      double d;
      if (!absl::SimpleAtod(value, &d) || !std::isfinite(d)) {
        return absl::InvalidArgumentError(absl::StrCat("--", f.name, " needs a number, got '", value, "'"));
      }
      *static_cast<double*>(f.target) = d;
      return absl::OkStatus();
    }
    case Kind::kBool:
      if (value == "true" || value == "1") {
        *static_cast<bool*>(f.target) = true;
      } else if (value == "false" || value == "0") {
        *static_cast<bool*>(f.target) = false;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", f.name, " needs true or false, got '", value, "'"));
      }
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status FlagSet::Parse(int argc, char** argv, int first, bool allow_positional) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      return absl::OkStatus();
    }
    if (arg.size() < 2 || arg[0] != '-') {
      if (!allow_positional) return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Flag* f = Find(name);
    if (f == nullptr && !has_value && name.rfind("no-", 0) == 0) {
      Flag* b = Find(name.substr(3));
      if (b != nullptr && b->kind == Kind::kBool) {
        b->set = true;
        *static_cast<bool*>(b->target) = false;
        continue;
      }
    }
    if (f == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "' (see --help)"));
    if (!has_value) {
      if (f->kind == Kind::kBool) {
        f->set = true;
        *static_cast<bool*>(f->target) = true;
        continue;
      }
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("flag --", f->name, " needs a value"));
      value = argv[++i];
    }
    absl::Status s = Assign(*f, value);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string FlagSet::Help() const {
  std::string out = absl::StrCat("Usage: ", usage_, "\n\nFlags:\n");
  for (const Flag& f : flags_) {
    std::string left = absl::StrCat("  --", f.name);
    if (!f.alias.empty()) absl::StrAppend(&left, ", -", f.alias);
    switch (f.kind) {
      case Kind::kString: absl::StrAppend(&left, " STR"); break;
      case Kind::kStringList: absl::StrAppend(&left, " STR (repeatable)"); break;
      case Kind::kInt: absl::StrAppend(&left, " N"); break;
      case Kind::kDouble: absl::StrAppend(&left, " X"); break;
      case Kind::kBool: break;
    }
    std::string line = absl::StrFormat("%-34s %s", left, f.help);
    if (!f.default_text.empty()) absl::StrAppend(&line, " (default: ", f.default_text, ")");
    absl::StrAppend(&out, line, "\n");
  }
  absl::StrAppend(&out, "  --help, -h                         this help\n");
  if (!footer_.empty()) absl::StrAppend(&out, "\n", footer_, "\n");
  return out;
}

}  // namespace wf
