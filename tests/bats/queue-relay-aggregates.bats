#!/usr/bin/env bats
# queue-relay into Redis with aggregates (count, sum, min, max, mean by a member): every
# aggregate checked exactly against the input, computed here independently (python3), from
# stdin, a Redis stream, RabbitMQ and Kafka (the mock cluster); and kill -9 loops from each
# broker into Redis and MariaDB at once, which must leave every record once and every aggregate
# exact, and which do not without the dedupe marker.
#
# Kill loop size: ENVKIT_KILL_LOOP_KILLS kills over ENVKIT_KILL_LOOP_RECORDS records per broker
# (CI: 6 over 6000; the issue's full size: ENVKIT_KILL_LOOP_KILLS=20 ENVKIT_KILL_LOOP_RECORDS=50000).

bats_require_minimum_version 1.5.0
load ../lib/test_helper

KILLS=${ENVKIT_KILL_LOOP_KILLS:-6}
RECORDS=${ENVKIT_KILL_LOOP_RECORDS:-6000}
AGGREGATES=count:municipality,count:condition,sum:temperature:municipality,min:temperature:municipality
AGGREGATES+=,max:temperature:municipality,mean:temperature:municipality,mean:humidity:municipality

setup_file() {
  start_rabbitmq 3>&- &
  rabbit=$!
  start_kafka_mock kafka 3 agg:3 kill:3 killoff:3
  start_redis
  start_mariadb
  wait "$rabbit"
  start_rabbitmq
}

teardown_file() {
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
  export ENVKIT_AMQP_PASSWORD=$RABBITMQ_PASSWORD
}

# N weather reports on stdout, ids w0..w(N-1). Temperatures are quarter degrees and humidity
# whole percents, so every sum is exact in binary floating point in any order: the checker
# can then ask for equality, not closeness, of sums and means.
reports() {
  python3 - "$1" <<'PY'
import random, sys
rng = random.Random(12)
towns = ["Mixco", "Antigua Guatemala", "San Juan Sacatepéquez", "Cobán", "Quetzaltenango",
         "Villa Nueva", "Escuintla", "Huehuetenango", "Petén", "Zacapa", "Chiquimula", "Sololá"]
conditions = ["sunny", "cloudy", "rain", "storm", "fog"]
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write('{"id":"w%d","municipality":"%s","condition":"%s","temperature":%s,"humidity":%d}\n' % (
        i, rng.choice(towns), rng.choice(conditions), rng.randrange(-20, 160) / 4, rng.randrange(20, 101)))
PY
}

# check_aggregates INPUT DB: every aggregate hash in Redis db DB equals what INPUT says, to the
# bit, and holds no other group; exactly the input's records are stored (report:* keys).
# Prints what differs and fails.
check_aggregates() {
  python3 - "$1" "$REDIS_PORT" "$2" "$AGGREGATES" <<'PY'
import json, subprocess, sys
path, port, db, specs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
records = {}
for line in open(path, encoding="utf-8"):
    r = json.loads(line)
    records[r["id"]] = r
def redis(*args):
    out = subprocess.run(["redis-cli", "-p", port, "-n", db, *args], check=True,
                         capture_output=True).stdout.decode()
    return out.split("\n")[:-1]
bad = []
for spec in specs:
    parts = spec.split(":")
    kind, by = parts[0], parts[-1]
    want = {}
    for r in records.values():
        g = r[by]
        if kind == "count":
            want[g] = want.get(g, 0) + 1
            continue
        v = float(r[parts[1]])
        if kind == "sum": want[g] = want.get(g, 0.0) + v
        elif kind == "min": want[g] = min(want.get(g, v), v)
        elif kind == "max": want[g] = max(want.get(g, v), v)
        else:
            s, n = want.get(g, (0.0, 0))
            want[g] = (s + v, n + 1)
    if kind == "mean":
        want = {g: s / n for g, (s, n) in want.items()}
    flat = redis("HGETALL", "agg:" + spec)
    got = dict(zip(flat[0::2], flat[1::2]))
    for g in sorted(set(want) | set(got)):
        w, x = want.get(g), got.get(g)
        same = w is not None and x is not None and (int(x) == w if kind == "count" else float(x) == w)
        if not same:
            bad.append("%s %s: want %s, got %s" % (spec, g, w, x))
keys = len(redis("--scan", "--pattern", "report:*"))
if keys != len(records):
    bad.append("%d report keys, want %d" % (keys, len(records)))
print("%d records, %d aggregates checked: %d differences" % (len(records), len(specs), len(bad)))
for b in bad[:10]:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
}

# The Redis sink URL with the aggregates, in db $1.
to_redis() { echo "redis://127.0.0.1:$REDIS_PORT/$1?key=report:{municipality}:{id}&ttl=86400&aggregate=$AGGREGATES"; }

@test "aggregates: the spec parser's and the script's unit tests pass against the live Redis" {
  run env ENVKIT_TEST_REDIS_URL="$REDIS_URL" \
    timeout 300 "$ENVKIT_BUILD_DIR/bin/envkit_unit_tests" --gtest_filter='Aggregate*:LiveRedisAggregates.*' --gtest_color=no
  assert_all_passed 10
}

@test "aggregates from stdin are exact; the same input again changes nothing; a bad temperature is rejected with its reason" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports 3000 > "$in"
  queue-relay --from - --to "$(to_redis 1)" --batch 100 < "$in"
  run check_aggregates "$in" 1
  echo "$output" >&3
  assert_success
  # Everything delivered a second time (a producer's retry, a replay): counted once.
  queue-relay --from - --to "$(to_redis 1)" --batch 37 < "$in"
  run check_aggregates "$in" 1
  assert_success
  run --separate-stderr queue-relay --from - --to "$(to_redis 1)" --dead-letter "file:$BATS_TEST_TMPDIR/dead.jsonl" \
    < <(echo '{"id":"hot","municipality":"Mixco","condition":"sunny","temperature":"very","humidity":50}')
  [ "$status" -eq 1 ]
  run jq -r .reason "$BATS_TEST_TMPDIR/dead.jsonl"
  assert_output "member 'temperature' is not a number, for aggregate sum:temperature:municipality"
  run check_aggregates "$in" 1
  assert_success
}

@test "the check fails when it should: without the dedupe marker the second delivery counts twice" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports 500 > "$in"
  export ENVKIT_TEST_REDIS_NO_DEDUPE=1
  queue-relay --from - --to "$(to_redis 2)" < "$in"
  run check_aggregates "$in" 2
  assert_success
  queue-relay --from - --to "$(to_redis 2)" < "$in"
  run check_aggregates "$in" 2
  assert_failure
  assert_output --partial "count:municipality Mixco: want"
}

@test "aggregates from a Redis stream (numbers arrive as strings) are exact" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports 3000 > "$in"
  queue-relay --from - --to "redis://127.0.0.1:$REDIS_PORT/0?key=aggstream&type=stream" < "$in"
  run --separate-stderr queue-relay --from "redis://127.0.0.1:$REDIS_PORT/0?stream=aggstream&group=g&create=true" \
    --to "$(to_redis 3)" --exit-when-idle 1s --stats
  assert_success
  run check_aggregates "$in" 3
  echo "$output" >&3
  assert_success
}

@test "aggregates from RabbitMQ are exact" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports 3000 > "$in"
  queue-relay --from - --to "$RABBITMQ_URL?queue=aggq" < "$in"
  run --separate-stderr queue-relay --from "$RABBITMQ_URL?queue=aggq&prefetch=500" --to "$(to_redis 4)" \
    --exit-when-idle 2s --stats
  assert_success
  run check_aggregates "$in" 4
  echo "$output" >&3
  assert_success
}

@test "aggregates from Kafka (the mock cluster) are exact" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports 3000 > "$in"
  queue-relay --from - --to "kafka://$KAFKA_BOOTSTRAP/agg?key=id" < "$in"
  run --separate-stderr queue-relay --from "kafka://$KAFKA_BOOTSTRAP/agg?group=agg" --to "$(to_redis 5)" \
    --exit-when-idle 8s --stats
  assert_success
  run check_aggregates "$in" 5
  echo "$output" >&3
  assert_success
}

# kill_loop FROM DB TABLE N [STOP_AT_DOUBLE]: relays FROM (N records already there) into Redis
# db DB with the aggregates and into MariaDB table TABLE at once, SIGKILLing the relay KILLS
# times at random points of its progress, then lets one run finish. With STOP_AT_DOUBLE the
# loop ends early once Redis shows a record counted twice (the run without the marker).
kill_loop() {
  local from=$1 db=$2 table=$3 n=$4 stop_at_double=${5:-}
  local to_mysql="mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=$table" kill pid target
  local slice=$((n / (KILLS + 2)))
  for ((kill = 1; kill <= KILLS; kill++)); do
    queue-relay --from "$from" --to "$(to_redis "$db")" --to "$to_mysql" --batch 100 --exit-when-idle 30s \
      2>>"$BATS_TEST_TMPDIR/err" &
    pid=$!
    # A random point of the next slice; Redis holds two keys a record (it and its marker).
    target=$((kill * slice + RANDOM % slice))
    kill_at_progress "$pid" $((2 * target)) "$BATS_TEST_TMPDIR/err" redis-cli -p "$REDIS_PORT" -n "$db" dbsize ||
      { echo "kill $kill failed" >&2; return 1; }
    if [[ -n $stop_at_double ]]; then
      local counted
      counted=$(redis-cli -p "$REDIS_PORT" -n "$db" hvals agg:count:municipality | awk '{s += $1} END {print s + 0}')
      ((counted > $(redis-cli -p "$REDIS_PORT" -n "$db" --scan --pattern 'report:*' | wc -l))) && break
    fi
  done
  echo "$kill kills; $(redis-cli -p "$REDIS_PORT" -n "$db" --scan --pattern 'report:*' | wc -l) of $n in Redis before the last run" >&3
  run --separate-stderr queue-relay --from "$from" --to "$(to_redis "$db")" --to "$to_mysql" --batch 500 \
    --exit-when-idle "${IDLE:-2s}" --stats
  echo "last run: $(grep -o '"records":{[^}]*}' <<< "$stderr")" >&3
  assert_success
}

# Creates TABLE in MariaDB for kill_loop.
create_table() {
  mariadb_for mariadb envkit -e "CREATE TABLE $1 (id VARCHAR(64) PRIMARY KEY, municipality VARCHAR(40), temperature DOUBLE)"
}
stored() { mariadb_for mariadb -N -B envkit -e "SELECT COUNT(*), COUNT(DISTINCT id) FROM $1"; }

@test "kill -9 loop, RabbitMQ into Redis with aggregates and MariaDB: every record once, every aggregate exact" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports "$RECORDS" > "$in"
  create_table killrabbit
  queue-relay --from - --to "$RABBITMQ_URL?queue=killq" < "$in"
  kill_loop "$RABBITMQ_URL?queue=killq&prefetch=300" 6 killrabbit "$RECORDS"
  run check_aggregates "$in" 6
  echo "$output" >&3
  assert_success
  [ "$(stored killrabbit)" = "$RECORDS	$RECORDS" ]
}

@test "kill -9 loop, Kafka (mock) into Redis with aggregates and MariaDB: every record once, every aggregate exact" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports "$RECORDS" > "$in"
  create_table killkafka
  queue-relay --from - --to "kafka://$KAFKA_BOOTSTRAP/kill?key=id" < "$in"
  IDLE=12s kill_loop "kafka://$KAFKA_BOOTSTRAP/kill?group=kill&X.session.timeout.ms=3000&X.heartbeat.interval.ms=300" \
    7 killkafka "$RECORDS"
  run check_aggregates "$in" 7
  echo "$output" >&3
  assert_success
  [ "$(stored killkafka)" = "$RECORDS	$RECORDS" ]
}

@test "kill -9 loop, a Redis stream into Redis with aggregates and MariaDB: every record once, every aggregate exact" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports "$RECORDS" > "$in"
  create_table killstream
  queue-relay --from - --to "redis://127.0.0.1:$REDIS_PORT/0?key=killstream&type=stream" < "$in"
  kill_loop "redis://127.0.0.1:$REDIS_PORT/0?stream=killstream&group=g&create=true&consumer=c1" 8 killstream "$RECORDS"
  run check_aggregates "$in" 8
  echo "$output" >&3
  assert_success
  [ "$(stored killstream)" = "$RECORDS	$RECORDS" ]
  run redis-cli -p "$REDIS_PORT" xpending killstream g
  [ "${lines[0]}" = 0 ]
}

@test "the kill -9 check fails when it should: without the dedupe marker (test-only switch) the aggregates come out wrong" {
  in=$BATS_TEST_TMPDIR/in.jsonl
  reports "$RECORDS" > "$in"
  create_table killoff
  queue-relay --from - --to "$RABBITMQ_URL?queue=killoffq" < "$in"
  export ENVKIT_TEST_REDIS_NO_DEDUPE=1
  # The markers are off, so progress is one key a record: count twice as far.
  KILLS=$((KILLS * 2)) kill_loop "$RABBITMQ_URL?queue=killoffq&prefetch=300" 9 killoff "$((RECORDS / 2))" stop
  run check_aggregates "$in" 9
  echo "$output" >&3
  assert_failure
  # Every record is still there once (keys and rows are idempotent); only the counts are off.
  [ "$(stored killoff)" = "$RECORDS	$RECORDS" ]
}
