#include "services/region/endpoint.h"

#include <arpa/inet.h>

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"

namespace policy::region {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("endpoint.", field, ": ", problem));
}

// [a-z0-9] first, then up to max - 1 of [a-z0-9] and `extra`.
bool IsName(absl::string_view s, size_t max, absl::string_view extra) {
  if (s.empty() || s.size() > max) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool plain = absl::ascii_islower(c) || absl::ascii_isdigit(c);
    if (!plain && (i == 0 || extra.find(c) == absl::string_view::npos)) return false;
  }
  return true;
}

bool IsDnsName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t end = host.find('.', start);
    if (end == absl::string_view::npos) end = host.size();
    const absl::string_view label = host.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

bool IsPort(absl::string_view port) {
  uint32_t n = 0;
  return !port.empty() && port.size() <= 5 &&
         std::all_of(port.begin(), port.end(), [](char c) { return absl::ascii_isdigit(c); }) &&
         absl::SimpleAtoi(port, &n) && n >= 1 && n <= 65535;
}

bool IsPath(absl::string_view path) {
  static constexpr absl::string_view kAllowed = "-._~/%!$&'()*+,;=:@";
  return std::all_of(path.begin(), path.end(), [](char c) {
    return absl::ascii_isalnum(c) || kAllowed.find(c) != absl::string_view::npos;
  });
}

}  // namespace

bool Endpoint::Serves(absl::string_view model) const {
  return std::find(models.begin(), models.end(), model) != models.end();
}

absl::string_view ProviderName(Provider p) {
  switch (p) {
    case Provider::kOpenAi:
      return "openai";
    case Provider::kAzure:
      return "azure";
  }
  return "unknown";
}

std::optional<Provider> ParseProvider(absl::string_view name) {
  for (Provider p : {Provider::kOpenAi, Provider::kAzure}) {
    if (ProviderName(p) == name) return p;
  }
  return std::nullopt;
}

bool IsValidBaseUrl(absl::string_view url) {
  constexpr absl::string_view kScheme = "https://";
  if (url.size() > kMaxBaseUrlBytes || !absl::StartsWith(url, kScheme)) return false;
  url.remove_prefix(kScheme.size());
  const size_t slash = url.find('/');
  const absl::string_view authority = url.substr(0, slash);
  const absl::string_view path =
      slash == absl::string_view::npos ? absl::string_view() : url.substr(slash);
  if (!IsPath(path)) return false;
  absl::string_view host = authority;
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return false;
    const std::string address(authority.substr(1, close - 1));
    in6_addr parsed;
    if (inet_pton(AF_INET6, address.c_str(), &parsed) != 1) return false;
    const absl::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (!IsPort(port)) return false;
    }
    return true;
  }
  if (const size_t colon = authority.rfind(':'); colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (!IsPort(port)) return false;
  }
  return IsDnsName(host);
}

absl::Status ValidateEndpointId(absl::string_view id, absl::string_view field) {
  if (IsName(id, kMaxEndpointIdBytes, "_.-")) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", Quoted(id), " is not 1 to 64 of [a-z0-9_.-], starting with a letter or digit"));
}

absl::Status ValidateEndpoint(const Endpoint& e) {
  RETURN_IF_ERROR(CheckMaxBytes({{"endpoint.id", e.id, kMaxEndpointIdBytes},
                                 {"endpoint.region", e.region, kMaxRegionBytes},
                                 {"endpoint.base_url", e.base_url, kMaxBaseUrlBytes},
                                 {"endpoint.deployment", e.deployment, kMaxDeploymentBytes}}));
  for (size_t i = 0; i < e.models.size(); ++i) {
    if (e.models[i].size() > kMaxModelBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("endpoint.models[", i, "]: longer than ", kMaxModelBytes, " bytes"));
    }
  }
  RETURN_IF_ERROR(ValidateEndpointId(e.id, "endpoint.id"));
  if (!IsName(e.region, kMaxRegionBytes, "-")) {
    return Invalid("region", absl::StrCat(Quoted(e.region), " is not 1 to 64 of [a-z0-9-]"));
  }
  if (!IsValidBaseUrl(e.base_url)) {
    return Invalid("base_url",
                   absl::StrCat(Quoted(e.base_url),
                                " is not https://host[:port][/path] (no user, query or fragment)"));
  }
  if (e.provider == Provider::kAzure && e.deployment.empty()) {
    return Invalid("deployment", "required for an Azure endpoint");
  }
  if (!e.deployment.empty() &&
      !IsName(absl::AsciiStrToLower(e.deployment), kMaxDeploymentBytes, "_.-")) {
    return Invalid("deployment",
                   absl::StrCat(Quoted(e.deployment), " is not 1 to 64 of [A-Za-z0-9_.-]"));
  }
  if (e.models.empty() || e.models.size() > kMaxModels) {
    return Invalid("models", absl::StrCat("1 to ", kMaxModels, " models, not ", e.models.size()));
  }
  absl::flat_hash_set<absl::string_view> models;
  for (const std::string& model : e.models) {
    if (!IsName(absl::AsciiStrToLower(model), kMaxModelBytes, "_.:-")) {
      return Invalid("models", absl::StrCat(Quoted(model), " is not 1 to 128 of [A-Za-z0-9_.:-]"));
    }
    if (!models.insert(model).second) {
      return Invalid("models", absl::StrCat(Quoted(model), " is listed twice"));
    }
  }
  if (e.priority < kMinPriority || e.priority > kMaxPriority) {
    return Invalid("priority",
                   absl::StrCat(e.priority, " is not in ", kMinPriority, "..", kMaxPriority));
  }
  if (e.weight < 0 || e.weight > kMaxWeight) {
    return Invalid("weight", absl::StrCat(e.weight, " is not in 0..", kMaxWeight));
  }
  return absl::OkStatus();
}

absl::Status RegistryFull() {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the registry holds ", kMaxEndpoints, " endpoints, the most it takes; delete one first"));
}

absl::Status ValidateRegistry(absl::Span<const Endpoint> endpoints) {
  if (endpoints.size() > kMaxEndpoints) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoints: ", endpoints.size(), ", more than ", kMaxEndpoints));
  }
  absl::flat_hash_set<absl::string_view> ids;
  for (const Endpoint& e : endpoints) {
    if (absl::Status s = ValidateEndpoint(e); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("endpoint ", Quoted(e.id), ": ", s.message()));
    }
    if (!ids.insert(e.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("endpoint.id: ", Quoted(e.id), " is used twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace policy::region
