#!/usr/bin/env bats
# The Redis sources (stream consumer group, list as a reliable queue) and the Redis sink's key
# template: their Live* unit tests, run for real against Redis on loopback.

bats_require_minimum_version 1.5.0

load ../lib/test_helper

setup_file() {
  start_redis
}

teardown_file() {
  stop_all_servers
}

LIVE='LiveRedisStreamSource.*:LiveRedisListSource.*:LiveRedisSink.*'

# Runs the unit-test binary on the Live* tests matching FILTER against REDIS_URL.
run_live() {
  local filter=$1 redis_url=$2
  run env ENVKIT_TEST_REDIS_URL="$redis_url" \
    timeout 300 "$ENVKIT_BUILD_DIR/bin/envkit_unit_tests" --gtest_filter="$filter" --gtest_color=no
}

@test "Redis sources: live tests pass against Redis over TCP" {
  run_live "$LIVE" "$REDIS_URL"
  assert_all_passed 16
}

@test "Redis sources: live tests pass against Redis over its Unix socket" {
  run_live "$LIVE" "redis://localhost/0?socket=$REDIS_SOCKET"
  assert_all_passed 16
}

@test "the live tests fail, not skip, when the server is not there" {
  run_live 'LiveRedisStreamSource.OutOfOrder*:LiveRedisListSource.Consumes*' "redis://127.0.0.1:1/0"
  assert_failure 1
  assert_output --partial '2 FAILED TESTS'
  assert_output --partial 'cannot connect to redis://127.0.0.1:1/0'
}
