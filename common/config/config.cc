#include "common/config/config.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/log/log.h"

extern char** environ;

namespace policy::config {

Parser::Parser(absl::string_view service) : service_(service) {}

void Parser::Add(Setting setting) { settings_.push_back(std::move(setting)); }

void Parser::AddString(absl::string_view name, std::string* field, absl::string_view help,
                       Sensitivity sensitivity) {
  Add({std::string(name), std::string(help), sensitivity, false,
       [field](absl::string_view v) {
         *field = std::string(v);
         return absl::OkStatus();
       },
       [field] { return *field; }});
}

void Parser::AddString(absl::string_view name, std::string* field, absl::string_view help,
                       std::function<std::string(const std::string&)> shown) {
  Add({std::string(name), std::string(help), Sensitivity::kPublic, false,
       [field](absl::string_view v) {
         *field = std::string(v);
         return absl::OkStatus();
       },
       [field, shown = std::move(shown)] { return shown(*field); }});
}

void Parser::AddList(absl::string_view name, std::vector<std::string>* field,
                     absl::string_view help) {
  Add({std::string(name), std::string(help), Sensitivity::kPublic, false,
       [field](absl::string_view v) {
         field->clear();
         for (absl::string_view item : absl::StrSplit(v, ',')) {
           item = absl::StripAsciiWhitespace(item);
           if (!item.empty()) field->emplace_back(item);
         }
         return absl::OkStatus();
       },
       [field] { return absl::StrJoin(*field, ","); }});
}

void Parser::AddInt(absl::string_view name, int64_t* field, absl::string_view help) {
  Add({std::string(name), std::string(help), Sensitivity::kPublic, false,
       [field](absl::string_view v) {
         if (!absl::SimpleAtoi(v, field)) return absl::InvalidArgumentError("not an integer");
         return absl::OkStatus();
       },
       [field] { return absl::StrCat(*field); }});
}

void Parser::AddBool(absl::string_view name, bool* field, absl::string_view help) {
  Add({std::string(name), std::string(help), Sensitivity::kPublic, true,
       [field](absl::string_view v) {
         if (!absl::SimpleAtob(v, field)) return absl::InvalidArgumentError("not a boolean");
         return absl::OkStatus();
       },
       [field] { return std::string(*field ? "true" : "false"); }});
}

void Parser::AddDuration(absl::string_view name, absl::Duration* field, absl::string_view help) {
  Add({std::string(name), std::string(help), Sensitivity::kPublic, false,
       [field](absl::string_view v) {
         // Whole days as the organisation file writes lifetimes ("90d": 1 to 8 digits), or
         // absl's form.
         int64_t days = 0;
         if (absl::string_view count = v;
             absl::ConsumeSuffix(&count, "d") && !count.empty() && count.size() <= 8 &&
             std::all_of(count.begin(), count.end(),
                         [](char c) { return absl::ascii_isdigit(c); }) &&
             absl::SimpleAtoi(count, &days)) {
           *field = absl::Hours(24) * days;
         } else if (!absl::ParseDuration(v, field)) {
           return absl::InvalidArgumentError("not a duration such as 500ms, 90s, 24h or 90d");
         }
         return absl::OkStatus();
       },
       [field] { return absl::FormatDuration(*field); }});
}

std::string Parser::EnvironmentName(absl::string_view name) const {
  return absl::AsciiStrToUpper(absl::StrCat("POLICY_", service_, "_", name));
}

absl::Status Parser::Set(const Setting& setting, absl::string_view value,
                         absl::string_view source) {
  absl::Status status = setting.set(value);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", status.message()));
  }
  return absl::OkStatus();
}

absl::Status Parser::Parse(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& environment) {
  // `--help` anywhere asks for the usage alone: nothing else is parsed or set, so neither a
  // bad flag nor a bad variable stands in its way. Not as the value of `--name value`.
  help_requested_ = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return absl::OkStatus();
    }
    if (absl::StartsWith(arg, "--") && arg.find('=') == std::string::npos && i + 1 < args.size() &&
        !absl::StartsWith(args[i + 1], "--") &&
        std::any_of(settings_.begin(), settings_.end(), [&](const Setting& s) {
          return !s.is_bool && absl::string_view(arg).substr(2) == s.name;
        })) {
      ++i;  // Its value.
    }
  }
  ignored_environment_.clear();
  const std::string prefix = EnvironmentName("");
  for (const auto& [name, value] : environment) {
    if (!absl::StartsWith(name, prefix)) continue;
    const bool known = std::any_of(settings_.begin(), settings_.end(), [&](const Setting& s) {
      return EnvironmentName(s.name) == name;
    });
    if (!known) ignored_environment_.push_back(name);
  }
  for (const Setting& setting : settings_) {
    auto it = environment.find(EnvironmentName(setting.name));
    if (it == environment.end()) continue;
    if (absl::Status s = Set(setting, it->second, it->first); !s.ok()) return s;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    absl::string_view body = absl::string_view(arg).substr(2);
    size_t eq = body.find('=');
    absl::string_view name = body.substr(0, eq);
    const Setting* found = nullptr;
    for (const Setting& setting : settings_) {
      if (setting.name == name) found = &setting;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    absl::string_view value = eq == absl::string_view::npos ? "true" : body.substr(eq + 1);
    if (eq == absl::string_view::npos && !found->is_bool) {
      // `--name value`.
      if (i + 1 == args.size() || absl::StartsWith(args[i + 1], "--")) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = args[++i];
    }
    if (absl::Status s = Set(*found, value, absl::StrCat("--", name)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseProcess(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::map<std::string, std::string> environment;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) continue;
    environment.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return Parse(args, environment);
}

std::string Parser::Describe() const {
  std::string out;
  for (const Setting& setting : settings_) {
    std::string value = setting.show();
    switch (setting.sensitivity) {
      case Sensitivity::kPublic:
        break;
      case Sensitivity::kSecret:
        value = value.empty() ? "" : "<redacted>";
        break;
      case Sensitivity::kUrlWithCredentials:
        value = RedactUrlPassword(value);
        break;
    }
    absl::StrAppend(&out, setting.name, "=", value, "\n");
  }
  return out;
}

std::string Parser::Usage() const {
  std::string out = absl::StrFormat("Usage: %s [--flag=value ...]\n\n", service_);
  for (const Setting& setting : settings_) {
    std::string shown = setting.sensitivity == Sensitivity::kSecret ? "" : setting.show();
    absl::StrAppendFormat(&out, "  --%s (%s)\n      %s\n      default: %s\n", setting.name,
                          EnvironmentName(setting.name), setting.help,
                          shown.empty() ? "(none)" : shown);
  }
  return out;
}

std::string RedactUrlPassword(absl::string_view url) {
  std::string out(url);
  // scheme://user:password@host...
  size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    size_t start = scheme + 3;
    size_t at = out.find('@', start);
    size_t slash = out.find_first_of("/?", start);
    size_t colon = out.find(':', start);
    if (at != std::string::npos && (slash == std::string::npos || at < slash) &&
        colon != std::string::npos && colon < at) {
      out.replace(colon + 1, at - colon - 1, "<redacted>");
    }
  }
  // ...?password=... (libpq also takes the password as a query parameter).
  size_t query = out.find('?');
  while (query != std::string::npos) {
    size_t key = query + 1;
    size_t end = out.find('&', key);
    if (out.compare(key, 9, "password=") == 0) {
      size_t value = key + 9;
      out.replace(value, (end == std::string::npos ? out.size() : end) - value, "<redacted>");
      end = out.find('&', value);
    }
    query = end;
  }
  return out;
}

absl::StatusOr<bool> LoadServiceConfig(absl::string_view service, int argc, char** argv,
                                       const std::function<void(Parser&)>& register_settings,
                                       const std::function<absl::Status()>& validate) {
  Parser parser(service);
  register_settings(parser);
  const absl::Status parsed = parser.ParseProcess(argc, argv);
  // Named first: a misspelt variable is often why parsing or validation fails.
  for (const std::string& name : parser.ignored_environment()) {
    LogWarning("environment variable names no setting; ignored", {{"variable", name}});
  }
  if (!parsed.ok()) return parsed;
  if (parser.help_requested()) {
    std::fputs(parser.Usage().c_str(), stdout);
    return false;
  }
  if (absl::Status s = validate(); !s.ok()) return s;
  LogInfo("configuration", {{"settings", parser.Describe()}});
  return true;
}

}  // namespace policy::config
