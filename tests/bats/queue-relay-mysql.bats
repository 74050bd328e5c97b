#!/usr/bin/env bats
# queue-relay into MariaDB: the sink's LOAD DATA LOCAL batches. LOAD DATA LOCAL only warns
# where INSERT refuses (a value coerced, a NULL made '', a row dropped), so the sink checks
# the warnings and sends a batch with anything but a duplicate key record by record as INSERT,
# which names the bad record. A second server with local_infile off gets INSERTs throughout.
# The servers' Com_load and Com_insert counters show which statement did the work.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_mariadb
  NOLOCAL_EXTRA_CONF=local_infile=0 start_mariadb nolocal
}

teardown_file() {
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
}

sql() { mariadb_for "$1" -N -B envkit -e "$2"; }
# How many statements of a kind (load, insert) SERVER has run.
statements() { sql "$1" "SHOW GLOBAL STATUS LIKE 'Com_$2'" | cut -f2; }
# A table keyed by the records' id; municipality has no default, note has one.
create_table() {
  sql "$1" "CREATE TABLE $2 (row_id BIGINT AUTO_INCREMENT PRIMARY KEY, id VARCHAR(20) NOT NULL,
    municipality VARCHAR(20) NOT NULL, temperature DOUBLE, note VARCHAR(20) NOT NULL DEFAULT 'none',
    UNIQUE KEY (id))"
}
url_of() {
  local port=MARIADB_PORT
  [[ $1 == nolocal ]] && port=NOLOCAL_PORT
  echo "mysql://envkit@127.0.0.1:${!port}/envkit?table=$2"
}

# N records {"id":"rK","municipality":"mK","temperature":K.5}, K from FROM.
records() {
  local from=$1 n=$2 i
  for ((i = from; i < from + n; i++)); do
    printf '{"id":"r%d","municipality":"m%d","temperature":%d.5}\n' "$i" "$i" "$i"
  done
}

# one_bad_record SERVER TABLE NAME JSON COLUMN: good records around record NAME (JSON, bad in
# COLUMN) and one that lacks a member with a default, in one batch: NAME alone is dead-lettered,
# its reason naming COLUMN; the others land as they are.
one_bad_record() {
  local server=$1 table=$2 name=$3 json=$4 column=$5
  sql "$server" "DELETE FROM $table"
  {
    records 0 5
    echo "$json"
    echo '{"id":"no-note","municipality":"m","temperature":2}'
    records 5 5
  } >"$BATS_TEST_TMPDIR/in.jsonl"
  rm -f "$BATS_TEST_TMPDIR/dead.jsonl"
  run --separate-stderr queue-relay --from - --to "$(url_of "$server" "$table")" --batch 100 \
    --dead-letter "file:$BATS_TEST_TMPDIR/dead.jsonl" <"$BATS_TEST_TMPDIR/in.jsonl"
  [ "$status" -eq 1 ]
  run jq -r '"\(.id) \(.reason)"' "$BATS_TEST_TMPDIR/dead.jsonl"
  [ "${#lines[@]}" -eq 1 ]
  [[ ${lines[0]} == "$name "*"'$column'"* ]]
  [ "$(sql "$server" "SELECT COUNT(*), COUNT(DISTINCT id) FROM $table")" = "11	11" ]
  [ "$(sql "$server" "SELECT COUNT(*) FROM $table WHERE id = '$name'")" -eq 0 ]
  [ "$(sql "$server" "SELECT CONCAT_WS(' ', municipality, temperature, note) FROM $table WHERE id = 'no-note'")" = "m 2 none" ]
  [ "$(sql "$server" "SELECT CONCAT_WS(' ', municipality, temperature, note) FROM $table WHERE id = 'r7'")" = "m7 7.5 none" ]
}

# What LOAD DATA LOCAL would store as 12 or '' (a warning), and a missing member without a
# default (an error even there).
bad_values_rejected_and_named() {
  local server=$1 table=$2
  create_table "$server" "$table"
  one_bad_record "$server" "$table" coerced '{"id":"coerced","municipality":"m","temperature":"12abc"}' temperature
  one_bad_record "$server" "$table" null-town '{"id":"null-town","municipality":null,"temperature":1}' municipality
  one_bad_record "$server" "$table" no-town '{"id":"no-town","temperature":1}' municipality
}

@test "LOAD DATA: a value it would coerce or drop is rejected and named; the rest of the batch lands" {
  loads=$(statements mariadb load)
  bad_values_rejected_and_named mariadb bad
  [ "$(statements mariadb load)" -eq $((loads + 3)) ]
}

@test "LOAD DATA: a re-sent record changes nothing and is not duplicated; no fallback to INSERT for it" {
  create_table mariadb again
  records 0 10 | queue-relay --from - --to "$(url_of mariadb again)" --batch 100
  loads=$(statements mariadb load) inserts=$(statements mariadb insert)
  # The same ids with other values, and one new record.
  records 0 11 | sed 's/"temperature":\([0-9]*\)\.5/"temperature":-\1/' |
    queue-relay --from - --to "$(url_of mariadb again)" --batch 100
  [ "$(sql mariadb "SELECT COUNT(*), COUNT(DISTINCT id) FROM again")" = "11	11" ]
  [ "$(sql mariadb "SELECT GROUP_CONCAT(temperature ORDER BY row_id) FROM again")" = "0.5,1.5,2.5,3.5,4.5,5.5,6.5,7.5,8.5,9.5,-10" ]
  [ "$(statements mariadb load)" -eq $((loads + 1)) ]
  [ "$(statements mariadb insert)" -eq "$inserts" ]
}

@test "local_infile off at the server: one refused LOAD DATA, then every batch by INSERT" {
  loads=$(statements nolocal load) inserts=$(statements nolocal insert)
  create_table nolocal plain
  run --separate-stderr queue-relay --from - --to "$(url_of nolocal plain)" --batch 10 -v < <(records 0 50)
  assert_success
  [[ $stderr == *"refuses LOAD DATA LOCAL"* ]]
  [ "$(sql nolocal "SELECT COUNT(*), COUNT(DISTINCT id) FROM plain")" = "50	50" ]
  [ "$(statements nolocal load)" -eq $((loads + 1)) ]
  (($(statements nolocal insert) >= inserts + 5))  # a batch of 10 each, or more if smaller
  # Bad values there are named the same way.
  bad_values_rejected_and_named nolocal bad
}
