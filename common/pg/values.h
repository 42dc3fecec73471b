#ifndef POLICY_COMMON_PG_VALUES_H_
#define POLICY_COMMON_PG_VALUES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pqxx/pqxx"

// How values cross between C++ and SQL, the same way in every service.
namespace policy::pg {

// Timestamps cross the wire as integer microseconds since the epoch, exactly:
// POLICY_PG_TS("$1") in SQL turns a bigint parameter into a timestamptz, and
// POLICY_PG_US("col") a timestamptz column into a bigint.
#define POLICY_PG_TS(param) "('epoch'::timestamptz + " param "::bigint * interval '1 microsecond')"
#define POLICY_PG_US(column) "(extract(epoch FROM " column ") * 1000000)::bigint"

inline int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }
inline std::optional<int64_t> Micros(const std::optional<absl::Time>& t) {
  if (!t.has_value()) return std::nullopt;
  return absl::ToUnixMicros(*t);
}
// A POLICY_PG_US column; nullopt for NULL.
inline std::optional<absl::Time> OptionalTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return absl::FromUnixMicros(f.as<int64_t>());
}

// A text[] literal holding `items` ('{"a","b"}'), for a parameter cast with ::text[].
std::string FormatTextArray(const std::vector<std::string>& items);

// The elements of a one-dimensional text[] column; INVALID_ARGUMENT for NULL elements or
// nested arrays.
absl::StatusOr<std::vector<std::string>> ParseTextArray(const pqxx::field& f);

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_VALUES_H_
