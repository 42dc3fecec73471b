#ifndef POLICY_COMMON_PG_STATEMENT_H_
#define POLICY_COMMON_PG_STATEMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pqxx/pqxx"

namespace policy::pg {

// 2000-01-01T00:00:00Z, PostgreSQL's epoch for binary timestamps, in Unix microseconds.
inline constexpr int64_t kPostgresEpochMicros = 946'684'800'000'000;

// A one-dimensional array parameter without NULLs, in PostgreSQL's binary array form, for
// statements such as INSERT ... SELECT FROM unnest($1::bigint[], $2::bytea[], ...): one
// parameter per column instead of one per value, so the statement's size does not grow with
// its rows.
class BinaryArray {
 public:
  enum class Type : uint32_t { kBigint = 20, kBytea = 17, kText = 25, kTimestamptz = 1184 };
  explicit BinaryArray(Type type) : type_(type) {}

  BinaryArray& Add(absl::string_view bytes) {  // A bytea or text element.
    AppendInt32(elements_, static_cast<uint32_t>(bytes.size()));
    elements_.append(bytes.data(), bytes.size());
    ++count_;
    return *this;
  }
  BinaryArray& AddInt(int64_t v) {
    AppendInt32(elements_, 8);
    AppendInt64(elements_, v);
    ++count_;
    return *this;
  }
  BinaryArray& AddTime(absl::Time t) {
    return AddInt(absl::ToUnixMicros(t) - kPostgresEpochMicros);
  }

  // Header (dimensions, no NULLs, element type, length, lower bound 1) and elements.
  std::string Encode() const {
    std::string out;
    out.reserve(20 + elements_.size());
    AppendInt32(out, count_ == 0 ? 0 : 1);
    AppendInt32(out, 0);
    AppendInt32(out, static_cast<uint32_t>(type_));
    if (count_ > 0) {
      AppendInt32(out, static_cast<uint32_t>(count_));
      AppendInt32(out, 1);
    }
    out += elements_;
    return out;
  }
  absl::string_view cast() const {
    switch (type_) {
      case Type::kBigint:
        return "::bigint[]";
      case Type::kBytea:
        return "::bytea[]";
      case Type::kText:
        return "::text[]";
      case Type::kTimestamptz:
        return "::timestamptz[]";
    }
    return "";
  }

  static void AppendInt32(std::string& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  }
  static void AppendInt64(std::string& out, int64_t v) {
    const uint64_t u = static_cast<uint64_t>(v);
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(u >> shift));
  }

 private:
  Type type_;
  size_t count_ = 0;
  std::string elements_;
};

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
  Statement& Array(const BinaryArray& array) {
    const std::string encoded = array.Encode();
    return Add(encoded.data(), encoded.size(), array.cast());
  }
  // The placeholder of the parameter added `n`-th (from 1), once more.
  Statement& Again(size_t n) {
    absl::StrAppend(&sql_, "$", n);
    return *this;
  }

  pqxx::result Exec(pqxx::transaction_base& tx) const {
    return tx.exec_params(sql_, pqxx::prepare::make_dynamic_params(values_));
  }
  // The same as a statement prepared on the connection, named after its text: PostgreSQL
  // parses it once per connection rather than on every run (pqxx prepares it on first use,
  // and again on a new connection). For statements run often with the same text.
  pqxx::result ExecPrepared(pqxx::transaction_base& tx) const {
    const std::string name = absl::StrCat("s", absl::Hash<std::string>{}(sql_));
    tx.conn().prepare(name, sql_);
    return tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(values_));
  }

 private:
  Statement& Add(const char* data, size_t size, absl::string_view cast) {
    values_.emplace_back(data, size);
    absl::StrAppend(&sql_, "$", values_.size(), cast);
    return *this;
  }
  Statement& AddInt64(int64_t v, absl::string_view cast) {
    std::string bytes;
    BinaryArray::AppendInt64(bytes, v);
    return Add(bytes.data(), bytes.size(), cast);
  }

  std::string sql_;
  std::vector<pqxx::binarystring> values_;
};

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_STATEMENT_H_
