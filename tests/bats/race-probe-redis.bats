#!/usr/bin/env bats
# race-probe's register workload against a real Redis: GET, SET and a Lua compare-and-set are
# linearizable key by key; a run that does not start from absent keys is caught.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_redis
}

teardown_file() {
  stop_all_servers
}

@test "Redis: reads, writes and compare-and-set on 3 keys from 8 workers are linearizable, key by key" {
  run -0 --separate-stderr race-probe --target "$REDIS_URL?prefix=lin:" --workload register --keys 3 \
    --workers 8 --requests 100 --format json --history "$BATS_TEST_TMPDIR/h.jsonl"
  echo "$output" | jq -e '.valid and .operations.ok + .operations.fail == 800 and .operations.unknown == 0'
  echo "$output" | jq -e '([.keys[] | .linearizable == "yes"] | all) and (.keys | length) == 3'
  # Compare-and-sets both succeeded and were refused: the workload exercised both paths.
  jq -s -e '[.[] | select(.f == "cas" and .outcome == "ok")] | length > 0' "$BATS_TEST_TMPDIR/h.jsonl"
  jq -s -e '[.[] | select(.f == "cas" and .outcome == "fail" and .status == 409)] | length > 0' "$BATS_TEST_TMPDIR/h.jsonl"
  # What the last write or cas of each key left is what Redis holds.
  for k in k0 k1 k2; do
    [ -n "$(redis-cli -p "$REDIS_PORT" GET "lin:$k")" ]
  done
}

@test "Redis: a key an earlier run left (reset=false) holds a value no write of this history made: not linearizable" {
  redis-cli -p "$REDIS_PORT" SET stale:k0 424242 >/dev/null
  # One worker, one key, and a client id whose (seeded) first operation is a read: it sees
  # the leftover value before any write of the run replaces it.
  run -1 --separate-stderr race-probe --target "$REDIS_URL?prefix=stale:&reset=false" --workload register \
    --keys 1 --workers 1 --requests 20 --client-id stale-a --format json --history "$BATS_TEST_TMPDIR/h.jsonl"
  head -n 1 "$BATS_TEST_TMPDIR/h.jsonl" | jq -e '.f == "read" and .value == 424242 and .outcome == "ok"'
  echo "$output" | jq -e '(.valid | not) and .keys.k0.linearizable == "no"'
  echo "$output" | jq -e '.keys.k0.window | map(select(test("read -> 424242"))) | length == 1'
  # With the default reset the key is deleted first: the same run is linearizable.
  redis-cli -p "$REDIS_PORT" SET stale:k0 424242 >/dev/null
  run -0 --separate-stderr race-probe --target "$REDIS_URL?prefix=stale:" --workload register \
    --keys 1 --workers 1 --requests 20 --client-id stale-a --format json
  echo "$output" | jq -e '.valid and .keys.k0.linearizable == "yes"'
}

@test "Redis: a bad reset= is a usage error at --check-config; nobody listening is 69" {
  run -64 --separate-stderr race-probe --target "$REDIS_URL?reset=maybe" --workload register --check-config
  [[ $stderr == *"reset= is true or false"* ]]
  run -69 --separate-stderr race-probe --target "redis://127.0.0.1:$(free_port)/0" --workload register \
    --connect-timeout 1s --format json
  [ -z "$output" ]
}
