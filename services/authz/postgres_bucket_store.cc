#include "services/authz/postgres_bucket_store.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/pg/values.h"

namespace policy::authz {

PostgresBucketStore::PostgresBucketStore(pg::Pool* pool, RefillClock clock)
    : pool_(pool), clock_(clock) {}

std::vector<pg::Privilege> PostgresBucketStore::Privileges() {
  std::vector<pg::Privilege> privileges;
  // take_buckets and adjust_bucket insert, lock (FOR UPDATE) and update buckets.
  pg::AddTablePrivileges("authz.rate_buckets", {"SELECT", "INSERT", "UPDATE"}, &privileges);
  pg::AddTablePrivileges("authz.usage_reports", {"SELECT", "INSERT", "DELETE"}, &privileges);
  for (const char* function : {
           "authz.take_buckets(text[], bigint[], bigint[], bigint[], timestamp with time zone)",
           "authz.adjust_bucket(text, bigint, bigint, timestamp with time zone)",
           "authz.refilled_level(double precision, timestamp with time zone, bigint, "
           "timestamp with time zone)",
       }) {
    privileges.push_back({pg::Privilege::On::kFunction, function, "EXECUTE"});
  }
  return privileges;
}

namespace {

// Runs `sql`, whose last parameter is the refill time in Unix microseconds: `now`, or NULL
// (the database's clock) with RefillClock::kDatabase.
template <typename... Args>
pqxx::result ExecAt(pqxx::transaction_base& tx, PostgresBucketStore::RefillClock clock,
                    const std::string& sql, absl::Time now, Args&&... args) {
  if (clock == PostgresBucketStore::RefillClock::kDatabase) {
    return tx.exec_params(sql, std::forward<Args>(args)..., nullptr);
  }
  return tx.exec_params(sql, std::forward<Args>(args)..., pg::Micros(now));
}

}  // namespace

absl::StatusOr<std::vector<BucketStore::Taken>> PostgresBucketStore::TakeAll(
    const std::vector<Take>& takes, absl::Time now) {
  if (takes.empty()) return std::vector<Taken>{};
  std::vector<std::string> keys;
  std::vector<int64_t> per_minute, units, want;
  keys.reserve(takes.size());
  per_minute.reserve(takes.size());
  units.reserve(takes.size());
  want.reserve(takes.size());
  for (const Take& take : takes) {
    if (absl::Status s = ValidateTake(take); !s.ok()) return s;
    const BucketCharge& c = *take.charge;
    keys.push_back(c.key);
    per_minute.push_back(c.per_minute);
    units.push_back(c.units);
    want.push_back(take.want);
  }
  auto bigint_array = [](const std::vector<int64_t>& v) {
    return absl::StrCat("{", absl::StrJoin(v, ","), "}");
  };
  std::vector<Taken> taken;
  taken.reserve(takes.size());
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows = ExecAt(
        tx, clock_,
        "SELECT granted, level FROM authz.take_buckets($1::text[], $2::bigint[], $3::bigint[], "
        "$4::bigint[], " POLICY_PG_TS("$5") ")",
        now, pg::FormatTextArray(keys), bigint_array(per_minute), bigint_array(units),
        bigint_array(want));
    if (rows.size() != takes.size()) {
      return absl::InternalError(absl::StrCat("authz.take_buckets returned ", rows.size(),
                                              " rows for ", takes.size(), " takes"));
    }
    taken.clear();
    for (const pqxx::row& row : rows) {
      taken.push_back(Taken{row[0].as<int64_t>(), row[1].as<double>()});
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return taken;
}

absl::Status PostgresBucketStore::Adjust(const std::string& key, int64_t per_minute, int64_t delta,
                                         absl::Time now) {
  if (absl::Status s = ValidateAdjustment(key, per_minute, delta); !s.ok()) return s;
  return pool_->Transact([&](pqxx::work& tx) {
    ExecAt(tx, clock_,
           "SELECT authz.adjust_bucket($1, $2::bigint, $3::bigint, " POLICY_PG_TS("$4") ")", now,
           key, per_minute, delta);
    return absl::OkStatus();
  });
}

absl::StatusOr<BucketStore::ReportOutcome> PostgresBucketStore::AdjustOnce(
    const std::string& report_id, const std::string& fingerprint,
    const std::vector<BucketCharge>& deltas, absl::Time now) {
  std::vector<const BucketCharge*> in_key_order;
  in_key_order.reserve(deltas.size());
  for (const BucketCharge& d : deltas) {
    if (absl::Status s = ValidateAdjustment(d.key, d.per_minute, d.units); !s.ok()) return s;
    in_key_order.push_back(&d);
  }
  std::sort(in_key_order.begin(), in_key_order.end(),
            [](const BucketCharge* a, const BucketCharge* b) { return a->key < b->key; });
  ReportOutcome outcome = ReportOutcome::kApplied;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(
        "DELETE FROM authz.usage_reports WHERE id IN (SELECT id FROM authz.usage_reports "
        "WHERE reported_at < " POLICY_PG_TS("$1") " ORDER BY reported_at LIMIT 100)",
        pg::Micros(now - kReportRetention));
    pqxx::result inserted = tx.exec_params(
        "INSERT INTO authz.usage_reports (id, fingerprint, reported_at) "
        "VALUES ($1, $2, " POLICY_PG_TS("$3") ") ON CONFLICT (id) DO NOTHING",
        report_id, fingerprint, pg::Micros(now));
    if (inserted.affected_rows() == 0) {
      pqxx::result seen =
          tx.exec_params("SELECT fingerprint FROM authz.usage_reports WHERE id = $1", report_id);
      outcome = !seen.empty() && seen[0][0].as<std::string>() == fingerprint
                    ? ReportOutcome::kDuplicate
                    : ReportOutcome::kConflict;
      return absl::OkStatus();
    }
    outcome = ReportOutcome::kApplied;
    for (const BucketCharge* d : in_key_order) {
      ExecAt(tx, clock_,
             "SELECT authz.adjust_bucket($1, $2::bigint, $3::bigint, " POLICY_PG_TS("$4") ")", now,
             d->key, d->per_minute, d->units);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return outcome;
}

}  // namespace policy::authz
