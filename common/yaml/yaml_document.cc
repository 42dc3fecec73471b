#include "common/yaml/yaml_document.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status.h"
#include "common/text/utf8.h"

namespace policy {
namespace {

// Records where each document starts, building nothing.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// "line N: " of the byte at `offset`.
std::string LineOf(absl::string_view text, size_t offset) {
  return absl::StrCat("line ", std::count(text.begin(), text.begin() + offset, '\n') + 1, ": ");
}

// YAML streams are UTF-8 here, and hold no control character but tab, line feed and carriage
// return (YAML 1.2's printable set); yaml-cpp's own messages about them are misleading.
absl::Status CheckYamlCharacters(absl::string_view text) {
  if (const size_t bad = FindInvalidUtf8(text); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(LineOf(text, bad), "not valid UTF-8"));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(LineOf(text, i), "control character 0x", absl::Hex(c, absl::kZeroPad2),
                       "; YAML allows tab, line feed and carriage return only"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string YamlLinePrefix(const YAML::Mark& mark) {
  return mark.is_null() ? "" : absl::StrCat("line ", mark.line + 1, ": ");
}

absl::StatusOr<YAML::Node> LoadSingleYamlDocument(absl::string_view yaml) {
  RETURN_IF_ERROR(CheckYamlCharacters(yaml));
  const std::string text(yaml);
  try {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    while (counter.starts.size() < 2 && parser.HandleNextDocument(counter)) {
    }
    if (counter.starts.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(YamlLinePrefix(counter.starts[1]),
                       "a second YAML document starts here; the file must hold exactly one"));
    }
    return counter.starts.empty() ? YAML::Node() : YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(YamlLinePrefix(e.mark), e.msg));
  }
}

}  // namespace policy
