#ifndef POLICY_SERVICES_AUDIT_AUDIT_MIGRATIONS_H_
#define POLICY_SERVICES_AUDIT_AUDIT_MIGRATIONS_H_

#include <vector>

#include "common/pg/migrations.h"

namespace policy::audit {

// services/audit/migrations/NNN_*.sql, embedded at build time; applied to schema `audit`.
const std::vector<pg::Migration>& Migrations();

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_AUDIT_MIGRATIONS_H_
