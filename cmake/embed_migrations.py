"""Writes a C++ source holding numbered SQL migrations as string literals."""
import argparse
import hashlib
import os
import re

parser = argparse.ArgumentParser()
parser.add_argument("--namespace", required=True)
parser.add_argument("--output", required=True)
parser.add_argument("files", nargs="*")
args = parser.parse_args()

entries = []
for path in args.files:
    name = os.path.basename(path)
    match = re.fullmatch(r"(\d{3})_([a-z0-9_]+)\.sql", name)
    if not match:
        raise SystemExit(f"{path}: migration names are NNN_snake_case.sql")
    with open(path, encoding="utf-8") as f:
        sql = f.read()
    entries.append((int(match.group(1)), match.group(2), sql))

versions = [v for v, _, _ in entries]
if versions != list(range(1, len(versions) + 1)):
    raise SystemExit(f"migrations must be numbered 001, 002, ... without gaps: {versions}")

def literal(text):
    delim = "sql" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return f'R"{delim}({text}){delim}"'

lines = ['#include "common/pg/migrations.h"', "", f"namespace {args.namespace} {{", "",
         "const std::vector<policy::pg::Migration>& Migrations() {",
         "  static const auto* const kMigrations = new std::vector<policy::pg::Migration>{"]
for version, name, sql in entries:
    lines.append(f'      {{{version}, "{name}", {literal(sql)}}},')
lines += ["  };", "  return *kMigrations;", "}", "", f"}}  // namespace {args.namespace}", ""]
with open(args.output, "w", encoding="utf-8") as f:
    f.write("\n".join(lines))
