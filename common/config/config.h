#ifndef POLICY_COMMON_CONFIG_CONFIG_H_
#define POLICY_COMMON_CONFIG_CONFIG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace policy::config {

// How a value may be shown when the configuration is printed.
enum class Sensitivity {
  kPublic,
  // Never shown: printed as <redacted>.
  kSecret,
  // A URL whose password, if any, is printed as <redacted>.
  kUrlWithCredentials,
};

// Binds named settings to fields of a service's config struct and fills them from
// `--name=value` (or `--name value`; a bool's `--name` alone is true) flags and
// `POLICY_<SERVICE>_<NAME>` environment variables. Flags win over the
// environment, which wins over the default already in the field. Not thread-safe; used once
// at start-up.
class Parser {
 public:
  // `service` is the binary's name, e.g. "keys" (environment prefix POLICY_KEYS_).
  explicit Parser(absl::string_view service);

  void AddString(absl::string_view name, std::string* field, absl::string_view help,
                 Sensitivity sensitivity = Sensitivity::kPublic);
  // A string shown (by Describe and Usage) only as `shown` gives it, never as it is: for a
  // value that must not be logged but whose fingerprint helps, such as keys.
  void AddString(absl::string_view name, std::string* field, absl::string_view help,
                 std::function<std::string(const std::string&)> shown);
  void AddInt(absl::string_view name, int64_t* field, absl::string_view help);
  void AddBool(absl::string_view name, bool* field, absl::string_view help);
  // Comma-separated: "a, b,c" is {"a", "b", "c"} (spaces around items and empty items dropped).
  void AddList(absl::string_view name, std::vector<std::string>* field, absl::string_view help);
  // Accepts absl durations: "250ms", "24h", "1h30m".
  void AddDuration(absl::string_view name, absl::Duration* field, absl::string_view help);

  // Returns INVALID_ARGUMENT naming the flag or variable for an unknown flag or a value that
  // does not parse. `--help` or `-h` anywhere in `args` (but as the value of a
  // `--name value`) sets help_requested(), returns OK and sets no field: a caller that sees
  // help_requested() prints Usage() and does nothing else.
  absl::Status Parse(const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& environment);
  // Parses the process's arguments (argv[0] skipped) and environment.
  absl::Status ParseProcess(int argc, char** argv);

  bool help_requested() const { return help_requested_; }
  // The POLICY_<SERVICE>_* variables of the last Parse that name no setting (a typo, or a
  // setting of another release), sorted. They are ignored rather than refused: a platform
  // may set such variables itself (Kubernetes' service links: POLICY_KEYS_PORT for a Service
  // named policy-keys).
  const std::vector<std::string>& ignored_environment() const { return ignored_environment_; }
  // One `name=value` per line with secrets redacted, for the start-up log.
  std::string Describe() const;
  std::string Usage() const;
  std::string EnvironmentName(absl::string_view name) const;

 private:
  struct Setting {
    std::string name;
    std::string help;
    Sensitivity sensitivity;
    bool is_bool;
    std::function<absl::Status(absl::string_view)> set;
    std::function<std::string()> show;
  };
  void Add(Setting setting);
  absl::Status Set(const Setting& setting, absl::string_view value, absl::string_view source);

  std::string service_;
  std::vector<Setting> settings_;
  bool help_requested_ = false;
  std::vector<std::string> ignored_environment_;
};

// `url` with the password replaced by <redacted>; unchanged when it carries none.
std::string RedactUrlPassword(absl::string_view url);

// What a service binary's main does with its configuration: `register_settings` adds them to a
// Parser for `service`, argv and the POLICY_<SERVICE>_* variables are parsed, `--help` prints
// the usage and gives false; otherwise `validate` runs, the settings are logged (secrets
// redacted) and the result is true. Each ignored variable is warned of by name, first. Errors: the
// parse's or the validation's.
absl::StatusOr<bool> LoadServiceConfig(absl::string_view service, int argc, char** argv,
                                       const std::function<void(Parser&)>& register_settings,
                                       const std::function<absl::Status()>& validate);

// The same for a configuration struct with Register(Parser&) and Validate().
template <typename Config>
absl::StatusOr<bool> LoadServiceConfig(absl::string_view service, int argc, char** argv,
                                       Config& config) {
  return LoadServiceConfig(
      service, argc, argv, [&config](Parser& parser) { config.Register(parser); },
      [&config] { return config.Validate(); });
}

}  // namespace policy::config

#endif  // POLICY_COMMON_CONFIG_CONFIG_H_
