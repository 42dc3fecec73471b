#ifndef POLICY_COMMON_YAML_YAML_DOCUMENT_H_
#define POLICY_COMMON_YAML_YAML_DOCUMENT_H_

#include <yaml-cpp/yaml.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// Loading the configuration files the services read (organisation file, recognizers).
namespace policy {

// "line N: " for a known mark, "" otherwise.
std::string YamlLinePrefix(const YAML::Mark& mark);

// The one YAML document of `text`, or a null node when it holds none. INVALID_ARGUMENT
// "line N: a second YAML document starts here; the file must hold exactly one" for two, and
// "line N: <the parser's message>" for malformed YAML. (YAML::LoadAll never returns on some
// malformed input, such as a stray top-level ',', so documents are counted first, two at
// most, and YAML::Load builds the first.) Text that is not UTF-8, or holds a control character
// other than tab, line feed and carriage return, is refused first: "line N: not valid UTF-8",
// "line N: control character 0x00; YAML allows tab, line feed and carriage return only".
absl::StatusOr<YAML::Node> LoadSingleYamlDocument(absl::string_view text);

}  // namespace policy

#endif  // POLICY_COMMON_YAML_YAML_DOCUMENT_H_
