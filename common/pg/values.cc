#include "common/pg/values.h"

#include "absl/status/status.h"

namespace policy::pg {

std::string FormatTextArray(const std::vector<std::string>& items) {
  std::string literal = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) literal += ',';
    literal += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') literal += '\\';
      literal += c;
    }
    literal += '"';
  }
  literal += '}';
  return literal;
}

absl::StatusOr<std::vector<std::string>> ParseTextArray(const pqxx::field& f) {
  std::vector<std::string> items;
  if (f.is_null()) return items;
  pqxx::array_parser parser = f.as_array();
  int depth = 0;
  for (;;) {
    auto [juncture, value] = parser.get_next();
    switch (juncture) {
      case pqxx::array_parser::juncture::row_start:
        if (++depth > 1) return absl::InvalidArgumentError("nested array where text[] expected");
        break;
      case pqxx::array_parser::juncture::row_end:
        --depth;
        break;
      case pqxx::array_parser::juncture::null_value:
        return absl::InvalidArgumentError("NULL element in a text[]");
      case pqxx::array_parser::juncture::string_value:
        items.push_back(std::move(value));
        break;
      case pqxx::array_parser::juncture::done:
        return items;
    }
  }
}

}  // namespace policy::pg
