#ifndef POLICY_SERVICES_REGION_REGION_MIGRATIONS_H_
#define POLICY_SERVICES_REGION_REGION_MIGRATIONS_H_

#include <vector>

#include "common/pg/migrations.h"

namespace policy::region {

// services/region/migrations/NNN_*.sql, embedded at build time; applied to schema `region`.
const std::vector<pg::Migration>& Migrations();

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_REGION_MIGRATIONS_H_
