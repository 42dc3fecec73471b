#ifndef POLICY_COMMON_PG_STATEMENT_H_
#define POLICY_COMMON_PG_STATEMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pqxx/pqxx"

namespace policy::pg {

// 2000-01-01T00:00:00Z, PostgreSQL's epoch for binary timestamps, in Unix microseconds.
inline constexpr int64_t kPostgresEpochMicros = 946'684'800'000'000;

// A statement with parameters, all sent in binary form: bytea without escaping, integers
// and timestamps as 8 bytes. Each placeholder carries its type, so nothing is inferred.
class Statement {
 public:
  explicit Statement(absl::string_view sql = "") : sql_(sql) {}

  Statement& Sql(absl::string_view text) {
    sql_.append(text.data(), text.size());
    return *this;
  }
  Statement& Int(int64_t v) { return AddInt64(v, "::bigint"); }
  // Binary timestamptz: microseconds since 2000-01-01, exactly.
  Statement& Time(absl::Time t) {
    return AddInt64(absl::ToUnixMicros(t) - kPostgresEpochMicros, "::timestamptz");
  }
  Statement& Text(absl::string_view v) { return Add(v.data(), v.size(), "::text"); }
  Statement& Bytes(absl::string_view v) { return Add(v.data(), v.size(), "::bytea"); }
  // The placeholder of the parameter added `n`-th (from 1), once more.
  Statement& Again(size_t n) {
    absl::StrAppend(&sql_, "$", n);
    return *this;
  }

  pqxx::result Exec(pqxx::work& tx) const {
    return tx.exec_params(sql_, pqxx::prepare::make_dynamic_params(values_));
  }

 private:
  Statement& Add(const char* data, size_t size, absl::string_view cast) {
    values_.emplace_back(data, size);
    absl::StrAppend(&sql_, "$", values_.size(), cast);
    return *this;
  }
  Statement& AddInt64(int64_t v, absl::string_view cast) {
    char bytes[8];
    uint64_t u = static_cast<uint64_t>(v);
    for (int i = 7; i >= 0; --i) {
      bytes[i] = static_cast<char>(u & 0xff);
      u >>= 8;
    }
    return Add(bytes, 8, cast);
  }

  std::string sql_;
  std::vector<pqxx::binarystring> values_;
};

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_STATEMENT_H_
