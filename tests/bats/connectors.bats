#!/usr/bin/env bats
# The MySQL and Redis connectors' Live* unit tests, run for real against MariaDB and Redis on loopback.

bats_require_minimum_version 1.5.0

load ../lib/test_helper

setup_file() {
  start_mariadb
  start_redis
}

teardown_file() {
  stop_all_servers
}

# Runs the unit-test binary on the Live* tests matching FILTER against MYSQL_URL and REDIS_URL.
run_live() {
  local filter=$1 mysql_url=$2 redis_url=$3
  run env ENVKIT_TEST_MYSQL_URL="$mysql_url" MYSQL_PWD="$MARIADB_PASSWORD" \
    ENVKIT_TEST_REDIS_URL="$redis_url" \
    "$ENVKIT_BUILD_DIR/bin/envkit_unit_tests" --gtest_filter="$filter" --gtest_color=no
}

@test "MySQL connector: live tests pass against MariaDB over TCP" {
  run_live 'LiveMysql.*' "$MARIADB_URL" "$REDIS_URL"
  assert_all_passed 12
}

@test "MySQL connector: live tests pass against MariaDB over its Unix socket" {
  run_live 'LiveMysql.*' "mysql://envkit@localhost/envkit?socket=$MARIADB_SOCKET" "$REDIS_URL"
  assert_all_passed 12
}

@test "Redis connector: live tests pass against Redis over TCP" {
  run_live 'LiveRedis.*' "$MARIADB_URL" "$REDIS_URL"
  assert_all_passed 7
}

@test "Redis connector: live tests pass against Redis over its Unix socket" {
  run_live 'LiveRedis.*' "$MARIADB_URL" "redis://localhost/0?socket=$REDIS_SOCKET"
  assert_all_passed 7
}

@test "the live tests fail, not skip, when the server is not there" {
  # Port 1 on loopback: nothing listens there.
  run_live 'LiveMysql.ConnectsAndReportsServer:LiveRedis.CommandsAreBinarySafe*' \
    "mysql://envkit@127.0.0.1:1/envkit" "redis://127.0.0.1:1/0"
  assert_failure 1
  assert_output --partial '2 FAILED TESTS'
  assert_output --partial 'cannot connect to mysql://envkit:***@127.0.0.1:1/envkit'
  assert_output --partial 'cannot connect to redis://127.0.0.1:1/0'
  refute_output --partial "$MARIADB_PASSWORD"
}
