#ifndef POLICY_SERVICES_AUTHZ_AUTHZ_MIGRATIONS_H_
#define POLICY_SERVICES_AUTHZ_AUTHZ_MIGRATIONS_H_

#include <vector>

#include "common/pg/migrations.h"

namespace policy::authz {

// services/authz/migrations/NNN_*.sql, embedded at build time; applied to schema `authz`.
const std::vector<pg::Migration>& Migrations();

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_AUTHZ_MIGRATIONS_H_
