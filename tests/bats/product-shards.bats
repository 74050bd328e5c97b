#!/usr/bin/env bats
# The product-shards scenario end to end (scenarios/product-shards/run, as scripts/demo runs
# it): every step's verdict, and proof that its "nothing lost" checks (shard-route verify and
# the scenario's own check.py) fail when a product is lost, doubled or changed.

bats_require_minimum_version 1.5.0

setup_file() {
  load ../lib/test_helper
  export SCENARIO=$ENVKIT_SOURCE_DIR/scenarios/product-shards
  export SHOP_WORK=$BATS_FILE_TMPDIR/product-shards
  local status=0
  "$SCENARIO/run" --keep --workdir "$SHOP_WORK" --json "$SHOP_WORK/report.json" --products 1200 \
    >"$SHOP_WORK.stdout" 2>"$SHOP_WORK.stderr" || status=$?
  echo "$status" >"$SHOP_WORK.status"
}

teardown_file() {
  load ../lib/test_helper
  "$SCENARIO/run" --stop "$SHOP_WORK"
}

setup() {
  load ../lib/test_helper
}

# A figure of STEP: KEY.SUBKEY...
figure() { scenario_figure "$SHOP_WORK/report.json" "$1" "$2"; }

@test "the scenario passes: placed, a primary stopped with nothing lost, rebalanced under writes, a shard restored" {
  cat "$SHOP_WORK.stderr"
  [ "$(<"$SHOP_WORK.status")" -eq 0 ]
  run -0 cat "$SHOP_WORK.stdout"
  assert_line --regexp '^product-shards: PASS  \(4 steps, [0-9]+ s\)$'
  [ "$(figure catalogue verify.documents)" -eq 1200 ]
  [ "$(figure catalogue verify.misplaced)" -eq 0 ]
  [ "$(figure catalogue users)" -eq 200 ]
  [ "$(figure failover check.expected)" -eq 2400 ]
  [ "$(figure failover check.missing)" -eq 0 ]
  [ "$(figure failover stopped)" != "$(figure failover elected)" ]
  # The rebalance moved what plan said while the writer went on, and ended with nothing lost.
  [ "$(figure rebalance plan.moved)" -gt 0 ]
  [ "$(figure rebalance writer_batches)" -gt 0 ]
  [ "$(figure rebalance rebalance.kept)" -eq 0 ]
  [ "$(figure rebalance verify.misplaced)" -eq 0 ]
  for k in missing extra duplicated changed; do
    [ "$(figure rebalance check.$k)" -eq 0 ]
  done
  [ "$(figure backup equal)" = true ]
  [ "$(figure backup restored_rows)" -gt 0 ]
}

# check.py and verify on the kept servers, after one change to the shards.
recheck() {
  shard-route find --map "$SHOP_WORK/maps/live.yaml" -n products >"$BATS_TEST_TMPDIR/found.jsonl"
  run --separate-stderr python3 "$SCENARIO/check.py" "$SHOP_WORK/data/written.jsonl" "$BATS_TEST_TMPDIR/found.jsonl"
  check_status=$status check_output=$output
  run --separate-stderr shard-route verify --map "$SHOP_WORK/maps/live.yaml" -n products
  verify_status=$status
}

@test "the checks see a lost product, a doubled one and a changed one" {
  local live=$SHOP_WORK/maps/live.yaml one
  recheck
  [ "$check_status" -eq 0 ]
  [ "$verify_status" -eq 0 ]
  one=$(shard-route get --map "$live" -n products gato10 | jq -c 'del(._id)')
  shard-route del --map "$live" -n products gato10
  recheck
  [ "$check_status" -eq 1 ]
  [[ $check_output == *'"missing": 1,'* ]]
  # A copy on the shard of the old map (rsA): verify names it misplaced, check.py doubled.
  shard-route put --map "$live" -n products <<<"$one"
  shard-route put --map "$SHOP_WORK/maps/shop.yaml" -n products <<<"$one"
  recheck
  [ "$verify_status" -eq 1 ]
  [ "$check_status" -eq 1 ]
  [[ $check_output == *'"duplicated": 1,'* ]]
  shard-route del --map "$SHOP_WORK/maps/shop.yaml" -n products gato10
  shard-route put --map "$live" -n products <<<"$one"
  recheck
  [ "$check_status" -eq 0 ]
  [ "$verify_status" -eq 0 ]
  jq -c '.price = 12345' <<<"$one" | shard-route put --map "$live" -n products
  recheck
  [ "$check_status" -eq 1 ]
  [[ $check_output == *'"changed": 1}'* ]]
}
