#!/usr/bin/env bash
# The demo, from a fresh machine: installs what is missing, builds and installs inventory_ext, starts a
# scratch PostgreSQL 15 with pg_cron preloaded on a private socket, runs demo/walkthrough.sql with its
# real output, and stops the cluster (also when something fails).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo    # only what the build and the demo need (scripts/setup.sh tests adds the tests' tools)
scripts/install.sh
source tests/harness/cluster.sh
cluster_start demo "cron.database_name = 'inventory_demo'"
cluster_psql demo -q -d postgres -c "CREATE DATABASE inventory_demo"
cluster_psql demo -q -d inventory_demo -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION inventory_ext"
echo "demo: scratch PostgreSQL 15 at $(cluster_dir demo), database inventory_demo"
echo
# Errors are part of the tour, so the script goes on after one; walkthrough.sql prints each SQLSTATE.
cluster_psql demo -d inventory_demo -v ON_ERROR_STOP=0 -e -f demo/walkthrough.sql 2>&1
echo
echo "demo: done; stopping the scratch cluster"
