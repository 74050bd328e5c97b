#!/usr/bin/env bats
# The bookstore scenario end to end (scenarios/bookstore/run, as scripts/demo runs it), at a
# CI size: every step's verdict, and proof that its "nothing lost / no oversell" checks fail
# when an order is lost or doubled, a sale is faked, or a restored row changes.

bats_require_minimum_version 1.5.0

setup_file() {
  load ../lib/test_helper
  export SCENARIO=$ENVKIT_SOURCE_DIR/scenarios/bookstore
  export BOOK_WORK=$BATS_FILE_TMPDIR/bookstore
  # One run of the whole scenario, kept running so the tests below can inspect it and
  # break it on purpose.
  local status=0
  "$SCENARIO/run" --keep --workdir "$BOOK_WORK" --json "$BOOK_WORK/report.json" \
    --orders 90 --stock 20 --buyers 4 >"$BOOK_WORK.stdout" 2>"$BOOK_WORK.stderr" || status=$?
  echo "$status" >"$BOOK_WORK.status"
}

teardown_file() {
  load ../lib/test_helper
  "$SCENARIO/run" --stop "$BOOK_WORK"
}

setup() {
  load ../lib/test_helper
  export ENVKIT_SERVERS_DIR=$BOOK_WORK/servers
}

step_ok() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(str(s["ok"]).lower() for s in r["steps"] if s["step"]==sys.argv[2]))' \
    "$BOOK_WORK/report.json" "$1"
}
# A figure of STEP: KEY, or KEY.SUBKEY.
figure() {
  python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
v = next(s["figures"] for s in r["steps"] if s["step"] == sys.argv[2])
for k in sys.argv[3].split("."): v = v[k]
print(v)' "$BOOK_WORK/report.json" "$1" "$2"
}
sql() { mariadb_for db -N -B bookstore -e "$1"; }

@test "the scenario passes and prints a report a person can read" {
  [ "$(<"$BOOK_WORK.status")" -eq 0 ] || { cat "$BOOK_WORK.stderr"; false; }
  run cat "$BOOK_WORK.stdout"
  assert_line --regexp '^bookstore: PASS  \(6 steps, [0-9]+ s\)$'
  assert_line --regexp '^  ok   tls '
  assert_line --regexp '^  ok   backup '
}

@test "tls: trusted through the CA, refused without it, a 3-day certificate is critical" {
  [ "$(step_ok tls)" = true ]
  [ "$(figure tls trusted)" = OK ]
  [ "$(figure tls untrusted)" = CRITICAL ]
  [ "$(figure tls expiring)" = CRITICAL ]
}

@test "group: one backend down keeps it serving, both down is critical, back after rise checks" {
  [ "$(step_ok group)" = true ]
  [ "$(figure group sequence)" = "OK OK OK WARNING WARNING CRITICAL CRITICAL OK" ]
  [ "$(figure group served_with_one_down)" -eq 6 ]
}

@test "stock: the conditional UPDATE never oversells; the racy one is caught" {
  [ "$(step_ok stock-safe)" = true ]
  [ "$(figure stock-safe check.oversold)" -eq 0 ]
  [ "$(figure stock-safe check.sold)" -eq 40 ]
  [ "$(step_ok stock-racy)" = true ]
  [ "$(figure stock-racy probe_exit)" -eq 1 ]
  [ "$(figure stock-racy check.oversold)" -gt 0 ]
}

@test "stock: the audit check fails when one sale too many is recorded" {
  local moves=$BATS_TEST_TMPDIR/moves.tsv
  cp "$BOOK_WORK/checks/moves-atomic.tsv" "$moves"
  run -0 python3 "$SCENARIO/check.py" stock "$moves" "$BOOK_WORK/checks/stock-atomic.tsv" 20
  # A sale committed after the stock was gone: a write the stock does not reflect.
  printf 'item0\t0\t0\n' >>"$moves"
  run -1 python3 "$SCENARIO/check.py" stock "$moves" "$BOOK_WORK/checks/stock-atomic.tsv" 20
  assert_output --partial '"oversold": 1'
}

@test "orders: the consumer was down for a backlog, none lost, none doubled" {
  [ "$(step_ok orders)" = true ]
  [ "$(figure orders backlog_while_down)" -gt 0 ]
  [ "$(figure orders check.published)" -eq 90 ]
  [ "$(figure orders check.stored_rows)" -eq 90 ]
}

@test "orders: the check fails when a stored order is deleted" {
  local ids=$BATS_TEST_TMPDIR/ids victim
  victim=$(sed -n '50p' "$BOOK_WORK/published.txt")
  sql "DELETE FROM orders WHERE id = '$victim'"
  sql "SELECT id FROM orders" >"$ids"
  run -1 python3 "$SCENARIO/check.py" orders "$BOOK_WORK/published.txt" "$ids"
  assert_output --partial '"missing": 1'
  assert_output --partial "$victim"
  sql "INSERT INTO orders (id, book, quantity) VALUES ('$victim', 'item0', 1)"
}

@test "orders: the check fails when an order is stored twice" {
  local ids=$BATS_TEST_TMPDIR/ids victim
  victim=$(sed -n '10p' "$BOOK_WORK/published.txt")
  sql "INSERT INTO orders (id, book, quantity) SELECT id, book, quantity FROM orders WHERE id = '$victim'"
  sql "SELECT id FROM orders" >"$ids"
  run -1 python3 "$SCENARIO/check.py" orders "$BOOK_WORK/published.txt" "$ids"
  assert_output --partial '"doubled": 1'
  sql "DELETE FROM orders WHERE id = '$victim' ORDER BY seq DESC LIMIT 1"
}

@test "backup: restored into scratch, identical; the comparison sees one changed row" {
  [ "$(step_ok backup)" = true ]
  [ "$(figure backup digest)" = "$(figure backup digest_restored)" ]
  mariadb_for db scratch -e "UPDATE books SET price = price + 0.01 WHERE item = 'item2'"
  local after
  after=$(mariadb_for db -N -B scratch -e "SELECT * FROM books ORDER BY item; SELECT * FROM stock ORDER BY item;
    SELECT * FROM orders ORDER BY seq" | sha256sum | cut -c1-16)
  [ "$after" != "$(figure backup digest)" ]
}

@test "run: --help, and a usage error is exit 64" {
  run -0 "$SCENARIO/run" --help
  assert_output --partial 'Usage: scenarios/bookstore/run'
  run -64 --separate-stderr "$SCENARIO/run" --orders many
  [ "${stderr_lines[0]}" = "bookstore: error: --orders needs a positive whole number" ]
}
