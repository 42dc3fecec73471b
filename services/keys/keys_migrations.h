#ifndef POLICY_SERVICES_KEYS_KEYS_MIGRATIONS_H_
#define POLICY_SERVICES_KEYS_KEYS_MIGRATIONS_H_

#include <vector>

#include "common/pg/migrations.h"

namespace policy::keys {

// services/keys/migrations/NNN_*.sql, embedded at build time; applied to schema `keys`.
const std::vector<pg::Migration>& Migrations();

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEYS_MIGRATIONS_H_
