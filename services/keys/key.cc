#include "services/keys/key.h"

#include <array>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy::keys {
namespace {

template <typename Enum, size_t N>
absl::StatusOr<Enum> ParseName(const std::array<std::pair<Enum, absl::string_view>, N>& names,
                               absl::string_view name, absl::string_view what) {
  for (const auto& [value, text] : names) {
    if (text == name) return value;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown ", what, " '", name, "'"));
}

template <typename Enum, size_t N>
absl::string_view NameOf(const std::array<std::pair<Enum, absl::string_view>, N>& names,
                         Enum value) {
  for (const auto& [v, text] : names) {
    if (v == value) return text;
  }
  return "unknown";
}

constexpr std::array<std::pair<KeyKind, absl::string_view>, 3> kKinds = {
    {{KeyKind::kProject, "project"},
     {KeyKind::kServiceAccount, "service_account"},
     {KeyKind::kAdmin, "admin"}}};
constexpr std::array<std::pair<PrincipalType, absl::string_view>, 2> kPrincipalTypes = {
    {{PrincipalType::kMember, "member"}, {PrincipalType::kServiceAccount, "service_account"}}};
constexpr std::array<std::pair<Environment, absl::string_view>, 4> kEnvironments = {
    {{Environment::kProduction, "production"},
     {Environment::kStaging, "staging"},
     {Environment::kDevelopment, "development"},
     {Environment::kSandbox, "sandbox"}}};
constexpr std::array<std::pair<KeyState, absl::string_view>, 4> kStates = {
    {{KeyState::kActive, "active"},
     {KeyState::kRotating, "rotating"},
     {KeyState::kRevoked, "revoked"},
     {KeyState::kExpired, "expired"}}};

}  // namespace

KeyState StateAt(const KeyRecord& key, absl::Time now) {
  if (key.state == KeyState::kRevoked) return KeyState::kRevoked;
  if (key.state == KeyState::kRotating && key.overlap_ends_at.has_value() &&
      now >= *key.overlap_ends_at && *key.overlap_ends_at < key.expires_at) {
    return KeyState::kRevoked;
  }
  if (now >= key.expires_at) return KeyState::kExpired;
  return key.state;
}

absl::string_view KindName(KeyKind kind) { return NameOf(kKinds, kind); }
absl::string_view PrincipalTypeName(PrincipalType type) { return NameOf(kPrincipalTypes, type); }
absl::string_view EnvironmentName(Environment e) { return NameOf(kEnvironments, e); }
absl::string_view StateName(KeyState state) { return NameOf(kStates, state); }

absl::StatusOr<KeyKind> ParseKind(absl::string_view name) {
  return ParseName(kKinds, name, "key kind");
}
absl::StatusOr<PrincipalType> ParsePrincipalType(absl::string_view name) {
  return ParseName(kPrincipalTypes, name, "principal type");
}
absl::StatusOr<Environment> ParseEnvironment(absl::string_view name) {
  return ParseName(kEnvironments, name, "environment");
}
absl::StatusOr<KeyState> ParseState(absl::string_view name) {
  return ParseName(kStates, name, "key state");
}

}  // namespace policy::keys
