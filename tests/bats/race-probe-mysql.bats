#!/usr/bin/env bats
# race-probe's stock workload against a real MariaDB: a correct conditional UPDATE never
# oversells; a racy read-then-write is caught.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_mariadb
}

teardown_file() {
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
}

@test "MariaDB, UPDATE ... WHERE stock > 0: 80 purchases of 30 in stock sell exactly 30" {
  url="mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=stock_atomic&buy=atomic"
  run -0 --separate-stderr race-probe --target "$url" --workload stock --items 2 --stock 15 --workers 8 --requests 10 --format json
  echo "$output" | jq -e '.valid and .operations.ok == 30 and .operations.fail == 50'
  echo "$output" | jq -e '[.items[] | .remaining == 0 and .oversold == 0 and .phantom == 0] | all'
  [ "$(mariadb_for mariadb -N -B envkit -e 'SELECT SUM(stock) FROM stock_atomic')" -eq 0 ]
}

# 8 workers each hold what they read for 20 ms before writing it back: concurrent buyers of
# the one item always overlap, so decrements are lost in every run.
@test "MariaDB, racy read-then-write: phantom purchases and oversell found, exit 1" {
  url="mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=stock_racy&buy=racy&window=20ms"
  run -1 --separate-stderr race-probe --target "$url" --workload stock --stock 20 --workers 8 --requests 10 --format json
  echo "$output" | jq -e '(.valid | not) and .items.item0.phantom > 0 and .items.item0.oversold > 0'
}

@test "MariaDB refusing the password: 78 before any purchase" {
  MYSQL_PWD=wrong run -78 --separate-stderr race-probe --target "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit" --workload stock
  assert_output ""
}
