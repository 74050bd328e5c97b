#!/usr/bin/env bats
# queue-relay from Kafka (the mock cluster) into MariaDB with source positions: records with
# no id, into a table with no unique key, so nothing but the positions (stored in the rows'
# transaction) keeps a crash between the sink's commit and the offset commit from writing
# them twice. A kill -9 loop must leave every record once, and does not with the positions
# turned off (a test-only switch).
#
# Kill loop size: ENVKIT_KILL_LOOP_KILLS kills over ENVKIT_KILL_LOOP_RECORDS records (as in
# queue-relay-aggregates.bats). A Kafka group's first join can take seconds on a loaded
# machine, hence the long --exit-when-idle.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

KILLS=${ENVKIT_KILL_LOOP_KILLS:-6}
RECORDS=${ENVKIT_KILL_LOOP_RECORDS:-6000}

setup_file() {
  start_kafka_mock kafka 3 pos:3 posoff:3 posone:3
  start_mariadb
}

teardown_file() {
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
}

# N records with no id member, numbered by n (not a key anywhere).
numbered() {
  local n=$1 i
  for ((i = 0; i < n; i++)); do
    printf '{"n":%d,"municipality":"m%d","temperature":%d.5}\n' "$i" $((i % 7)) $((i % 30))
  done
}

sql() { mariadb_for mariadb -N -B envkit -e "$1"; }
# A table without a unique key on anything a record carries: a second write is a second row.
create_table() { sql "CREATE TABLE $1 (row_id BIGINT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL, municipality VARCHAR(20), temperature DOUBLE)"; }
rows() { sql "SELECT COUNT(*) FROM $1"; }
# "ROWS DISTINCT-n"
stored() { sql "SELECT COUNT(*), COUNT(DISTINCT n) FROM $1"; }

# kill_loop TOPIC TABLE [STOP_AT_DOUBLE]: relays TOPIC (RECORDS records there) into TABLE,
# SIGKILLing the relay KILLS times at random points of its progress, then lets one run
# finish. With STOP_AT_DOUBLE the loop ends once a record is stored twice.
kill_loop() {
  local topic=$1 table=$2 stop_at_double=${3:-} kill pid target
  local from="kafka://$KAFKA_BOOTSTRAP/$topic?group=$topic&X.session.timeout.ms=3000&X.heartbeat.interval.ms=300"
  local to="mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=$table"
  local slice=$((RECORDS / (KILLS + 2)))
  for ((kill = 1; kill <= KILLS; kill++)); do
    queue-relay --from "$from" --to "$to" --batch 100 --exit-when-idle 30s 2>>"$BATS_TEST_TMPDIR/err" &
    pid=$!
    target=$((kill * slice + RANDOM % slice))
    kill_at_progress "$pid" "$target" "$BATS_TEST_TMPDIR/err" rows "$table" || { echo "kill $kill failed" >&2; return 1; }
    if [[ -n $stop_at_double ]]; then
      read -r all distinct <<< "$(stored "$table")"
      ((all > distinct)) && break
    fi
  done
  echo "$kill kills; $(stored "$table") (rows, distinct) of $RECORDS before the last run" >&3
  run --separate-stderr queue-relay --from "$from" --to "$to" --batch 500 --exit-when-idle 12s --stats
  echo "last run: $(grep -o '"records":{[^}]*}' <<< "$stderr")" >&3
  assert_success
}

@test "kill -9 loop, Kafka (mock) into MariaDB, records with no id: every record once, by the stored positions" {
  create_table pos
  numbered "$RECORDS" | queue-relay --from - --to "kafka://$KAFKA_BOOTSTRAP/pos"
  kill_loop pos pos
  [ "$(stored pos)" = "$RECORDS	$RECORDS" ]
  # One position a partition, in the default table, at the partition's last offset: together
  # they count every record.
  [ "$(sql "SELECT COUNT(*), SUM(\`offset\` + 1) FROM envkit_positions WHERE sink_table = 'pos' AND consumer_group = 'pos' AND topic = 'pos'")" = "3	$RECORDS" ]
  # A restart reads them and starts past them (nothing left to read, nothing written).
  run --separate-stderr queue-relay --from "kafka://$KAFKA_BOOTSTRAP/pos?group=pos" \
    --to "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=pos" --exit-when-idle 12s --stats
  assert_success
  [ "$(stored pos)" = "$RECORDS	$RECORDS" ]
}

@test "the kill -9 check fails when it should: without the positions (test-only switch) records are stored twice" {
  create_table posoff
  numbered "$RECORDS" | queue-relay --from - --to "kafka://$KAFKA_BOOTSTRAP/posoff"
  export ENVKIT_TEST_MYSQL_NO_POSITIONS=1
  KILLS=$((KILLS * 2)) kill_loop posoff posoff stop
  read -r all distinct <<< "$(stored posoff)"
  echo "without positions: $all rows for $distinct records" >&3
  # Nothing lost (at least once), but some record twice: the check above would fail.
  [ "$distinct" -eq "$RECORDS" ]
  ((all > RECORDS))
}

@test "a group whose commit is behind the stored positions starts past them: the records below are not read again" {
  create_table posone
  numbered 300 | queue-relay --from - --to "kafka://$KAFKA_BOOTSTRAP/posone"
  # As if the relay had stored partition 0 up to offset 49 and died before committing.
  sql "CREATE TABLE IF NOT EXISTS posmarks (sink_table VARCHAR(64) NOT NULL, consumer_group VARCHAR(255) NOT NULL, topic VARCHAR(249) NOT NULL, \`partition\` INT NOT NULL, \`offset\` BIGINT NOT NULL, PRIMARY KEY (sink_table, consumer_group, topic, \`partition\`))"
  sql "INSERT INTO posmarks VALUES ('posone', 'g1', 'posone', 0, 49)"
  run --separate-stderr queue-relay -v --from "kafka://$KAFKA_BOOTSTRAP/posone?group=g1" \
    --to "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=posone&positions=posmarks" --exit-when-idle 12s --stats
  assert_success
  [[ $stderr == *"partition 0 starts at 50"* ]]
  [ "$(rows posone)" -eq 250 ]
  [ "$(sql "SELECT SUM(\`offset\` + 1) FROM posmarks WHERE consumer_group = 'g1'")" -eq 300 ]
  # With two workers batches may commit out of order: positions are not kept (nor used).
  run --separate-stderr queue-relay --from "kafka://$KAFKA_BOOTSTRAP/posone?group=g2" --workers 2 \
    --to "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=posone&positions=posmarks" --exit-when-idle 12s
  assert_success
  echo "two workers: $(rows posone) rows" >&3
  [ "$(rows posone)" -eq 550 ]
  [ "$(sql "SELECT COUNT(*) FROM posmarks WHERE consumer_group = 'g2'")" -eq 0 ]
}
