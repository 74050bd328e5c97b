#!/usr/bin/env bats
# sensor-push end to end: the Open-Meteo stand-in as source; MariaDB (direct and through the
# nginx stream proxy), Redis, an HTTP receiver and stdout as sinks; outages, spool, signals.

bats_require_minimum_version 1.5.0
load ../lib/test_helper
load ../lib/http_fixtures

setup_file() {
  # RabbitMQ takes seconds to boot: start it first, in the background, and collect it last.
  start_rabbitmq 3>&- &
  rabbit=$!
  start_kafka_mock kafka 3 readings:3
  start_mariadb
  start_nginx_stream nginx "127.0.0.1:$MARIADB_PORT"
  start_redis
  # Open-Meteo's clock pinned, so every run in a test sees the same observed time.
  start_openmeteo_server openmeteo --now 2026-11-22T16:50:00Z
  start_http_receiver receiver
  wait "$rabbit"
  start_rabbitmq  # already up: waits for it and exports its variables here
}

teardown_file() {
  stop_http_fixtures
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
  table=t$BATS_TEST_NUMBER
  direct="mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=$table&create=true"
  proxied="mysql://envkit@127.0.0.1:$NGINX_PORT/envkit?table=$table&create=true"
  http_fixture_mode openmeteo ok
}

sql() { mariadb_for mariadb -N -B envkit -e "$1"; }

# The ids sensor-push sent, as its local file sink saw them (the ground truth of a run).
sent_ids() { grep -o '"id":"[^"]*"' "$1" | cut -d'"' -f4 | sort -u; }

# Every record of the file sink $1 is in table $2 exactly once, and the table holds nothing else.
stored_exactly_once() {
  local sent=$1 t=$2
  local rows distinct
  rows=$(sql "SELECT COUNT(*) FROM $t")
  distinct=$(sql "SELECT COUNT(DISTINCT id) FROM $t")
  if [[ $rows != "$distinct" ]]; then
    echo "$t holds $rows rows but $distinct distinct readings" >&2
    return 1
  fi
  if ! diff <(sent_ids "$sent") <(sql "SELECT id FROM $t" | sort) >&2; then
    echo "$t and $sent differ (< only sent, > only stored)" >&2
    return 1
  fi
}

wait_for_rows() {  # TABLE N SECONDS
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    (( $(sql "SELECT COUNT(*) FROM $1" 2>/dev/null || echo 0) >= $2 )) && return 0
    sleep 0.2
  done
  echo "$1 did not reach $2 rows in $3 s" >&2
  return 1
}

@test "--help goes to stdout and exits 0; a usage error says what and where to look" {
  run --separate-stderr sensor-push --help
  assert_success
  assert_output --partial "Usage: sensor-push"
  assert_output --partial "--spool DIR"
  run --separate-stderr sensor-push --version
  assert_success
  assert_output --regexp '^sensor-push \(envkit\) [0-9.]+$'
  run -64 --separate-stderr sensor-push --to - --rate nope
  assert_output ""
  [[ $stderr == *"sensor-push: error: "*"--rate"* ]]
  [[ $stderr == *"Try 'sensor-push --help' for more information."* ]]
}

@test "sim readings to stdout are JSON Lines keyed by city and time" {
  run --separate-stderr sensor-push --source sim --count 45 --seed 3 --to -
  assert_success
  [ "${#lines[@]}" -eq 45 ]
  [ "$(printf '%s\n' "${lines[@]}" | grep -o '"id":"[^"]*"' | sort -u | wc -l)" -eq 45 ]
  [[ ${lines[0]} == '{"id":"Bogotá@'* ]]
  run --separate-stderr sensor-push --source sim --count 45 --seed 3 --to -
  first=$output
  [ -z "$stderr" ]
}

@test "open-meteo: one city, then 45 cities in batches of 20 (3 calls)" {
  http_fixture_reset openmeteo
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --city 'Bogotá:4.711:-74.0721:2640' --once --to -
  assert_success
  assert_output --partial '"id":"Bogotá@2026-11-22T16:45:00Z"'
  assert_output --partial '"source":"open-meteo"'
  cities=$BATS_TEST_TMPDIR/cities.csv
  echo "name,latitude,longitude" > "$cities"
  for i in $(seq 1 45); do echo "Station $i,$((i % 80)).5,-7$((i % 10)).25" >> "$cities"; done
  http_fixture_reset openmeteo
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --cities-file "$cities" --api-batch 20 --once --to - --stats
  assert_success
  [ "${#lines[@]}" -eq 45 ]
  [[ $stderr == *'"api_calls":3'* ]]
  run curl -fsS "${OPENMETEO_BASE_URL}/_stats"
  assert_output --partial '"requests": 3'
  # The three calls run in parallel, so they may arrive in any order.
  run jq -c '.locations_per_request | sort' <<<"$output"
  assert_output '[5,20,20]'
}

@test "open-meteo: 429 twice then success is retried with backoff and delivers everything" {
  http_fixture_mode openmeteo 429-then-ok=2
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --api-batch 100 --once --to - --stats -v
  assert_success
  [ "${#lines[@]}" -eq 20 ]
  [[ $stderr == *'"api_retries":2'* ]]
  [[ $stderr == *"HTTP 429"* ]]
}

@test "open-meteo: 500 on every call fails after the retries, naming each city, exit 69" {
  http_fixture_mode openmeteo 500
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --api-retries 2 --once --to -
  [ "$status" -eq 69 ]
  assert_output ""
  [[ $stderr == *"sensor-push: error: Bogotá: HTTP 500"*"after 3 attempts"* ]]
  [[ $stderr == *"Leticia: HTTP 500"* ]]
}

@test "open-meteo: a response slower than --api-timeout is bounded, exit 69" {
  http_fixture_mode openmeteo slow=5
  SECONDS=0
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --api-timeout 1s --api-retries 0 --once --to -
  [ "$status" -eq 69 ]
  ((SECONDS < 4))
  [[ $stderr == *"Bogotá:"* ]]
}

@test "open-meteo: malformed JSON and an error body are bad data, exit 65, each city named" {
  http_fixture_mode openmeteo malformed
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --city A:1:1 --city B:2:2 --once --to -
  [ "$status" -eq 65 ]
  [[ $stderr == *"A: malformed response"* ]]
  [[ $stderr == *"B: malformed response"* ]]
  http_fixture_mode openmeteo error-body
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --city A:1:1 --once --to -
  [ "$status" -eq 65 ]
  [[ $stderr == *"A: API error:"* ]]
}

@test "--every ticks on the clock's grid: whole seconds, one round a tick, none skipped" {
  run --separate-stderr sensor-push --source sim --city Bogotá --every 1s --duration 3500ms --to -
  assert_success
  [ "${#lines[@]}" -ge 3 ]
  times=$(printf '%s\n' "${lines[@]}" | grep -o '"observed_at":"[^"]*"' | cut -d'"' -f4)
  # Every tick is a whole second (no milliseconds, so aligned), and consecutive ticks are 1 s apart.
  ! grep -v -E 'T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' <<<"$times"
  epochs=$(while read -r t; do date -u -d "$t" +%s; done <<<"$times")
  [ "$(awk 'NR > 1 && $1 - prev != 1 {bad = 1} {prev = $1} END {print bad + 0}' <<<"$epochs")" -eq 0 ]
}

@test "bad input: a malformed cities file names file and line; bad URLs and lists are usage errors" {
  printf 'name,latitude,longitude\nBogotá,4.7\n' > "$BATS_TEST_TMPDIR/bad.csv"
  run -65 --separate-stderr sensor-push --cities-file "$BATS_TEST_TMPDIR/bad.csv" --once --to -
  [[ $stderr == *"bad.csv:2: expected 3 fields"* ]]
  run -66 --separate-stderr sensor-push --cities-file "$BATS_TEST_TMPDIR/none.csv" --once --to -
  run -64 --separate-stderr sensor-push --cities peru --once --to -
  [[ $stderr == *"unknown city list 'peru'"* ]]
  run -64 --separate-stderr sensor-push --city Atlantis --once --to -
  [[ $stderr == *"--city 'Atlantis': unknown city"* ]]
  run -64 --separate-stderr sensor-push --source sim --once --to 'mysql//nohost'
  [[ $stderr == *"invalid URL"* ]]
  run -64 --separate-stderr sensor-push --source sim --once --to 'redis://127.0.0.1/0'
  [[ $stderr == *"name the key"* ]]
}

@test "into MariaDB directly: typed table, unique key, and --once twice inserts no duplicate" {
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --once --to "$direct" --to "file:$BATS_TEST_TMPDIR/sent.jsonl"
  assert_success
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --once --to "$direct" --to "file:$BATS_TEST_TMPDIR/sent.jsonl"
  assert_success
  [ "$(sql "SELECT COUNT(*) FROM $table")" -eq 20 ]
  [ "$(wc -l < "$BATS_TEST_TMPDIR/sent.jsonl")" -eq 40 ]
  stored_exactly_once "$BATS_TEST_TMPDIR/sent.jsonl" "$table"
  run sql "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_NAME='$table' AND COLUMN_NAME IN ('observed_at','temperature_2m','weather_code') ORDER BY COLUMN_NAME"
  assert_output $'datetime\ndecimal\nsmallint'
  # Times are stored as UTC; a reader in Bogotá sees its own time through CONVERT_TZ.
  run sql "SELECT DATE_FORMAT(CONVERT_TZ(observed_at,'+00:00','America/Bogota'),'%H:%i') FROM $table WHERE city='Bogotá'"
  assert_output "11:45"
}

@test "a database running in America/Bogota stores the same instant; its readers see local time" {
  BOGOTA_EXTRA_CONF="default-time-zone=America/Bogota" start_mariadb bogota
  run mariadb_for bogota -N -e "SELECT @@global.time_zone"
  assert_output "America/Bogota"
  export MYSQL_PWD=$BOGOTA_PASSWORD
  run --separate-stderr sensor-push --api-url "$OPENMETEO_URL" --city Bogotá --once \
    --to "mysql://envkit@127.0.0.1:$BOGOTA_PORT/envkit?table=readings&create=true"
  assert_success
  # Open-Meteo said 16:45 UTC (11:45 in Bogotá). Stored as UTC, whatever the server's zone.
  run mariadb_for bogota -N envkit -e "SELECT observed_at, CONVERT_TZ(observed_at, '+00:00', @@time_zone) FROM readings"
  assert_output $'2026-11-22 16:45:00.000\t2026-11-22 11:45:00.000'
  stop_mariadb bogota
}

@test "into MariaDB through the nginx stream proxy" {
  run --separate-stderr sensor-push --source sim --count 200 --to "$proxied" --to "file:$BATS_TEST_TMPDIR/sent.jsonl"
  assert_success
  stored_exactly_once "$BATS_TEST_TMPDIR/sent.jsonl" "$table"
  [ "$(sql "SELECT COUNT(*) FROM $table")" -eq 200 ]
}

@test "the exactly-once check notices a lost reading and a duplicated one" {
  run --separate-stderr sensor-push --source sim --count 40 --to "$direct" --to "file:$BATS_TEST_TMPDIR/sent.jsonl"
  assert_success
  stored_exactly_once "$BATS_TEST_TMPDIR/sent.jsonl" "$table"
  sql "DELETE FROM $table WHERE city='Cali' LIMIT 1"
  run stored_exactly_once "$BATS_TEST_TMPDIR/sent.jsonl" "$table"
  assert_failure
  assert_output --partial "< Cali@"
  # A duplicate (the unique key dropped) is caught too.
  sql "ALTER TABLE $table DROP INDEX record_identity"
  sql "INSERT INTO $table (id, city, latitude, longitude, observed_at, source) SELECT id, city, latitude, longitude, observed_at, source FROM $table WHERE city='Bogotá' LIMIT 1"
  run stored_exactly_once "$BATS_TEST_TMPDIR/sent.jsonl" "$table"
  assert_failure
}

@test "the database stopped for a while and started again: every reading arrives exactly once" {
  spool=$BATS_TEST_TMPDIR/spool
  sent=$BATS_TEST_TMPDIR/sent.jsonl
  sensor-push --source sim --every 1s --spool "$spool" --connect-timeout 1s --timeout 2s \
    --to "$direct" --to "file:$sent" --stats 2>"$BATS_TEST_TMPDIR/err" &
  pid=$!
  wait_for_rows "$table" 40 20
  stop_mariadb
  sleep 4
  start_mariadb
  # Readings made while it was down drain from the spool; wait until the table catches up.
  deadline=$((SECONDS + 30))
  until [[ $(sql "SELECT COUNT(*) FROM $table") -ge $(wc -l < "$sent") && $(wc -l < "$sent") -ge 200 ]]; do
    ((SECONDS < deadline)) || { cat "$BATS_TEST_TMPDIR/err" >&2; false; }
    sleep 0.5
  done
  kill -TERM "$pid"
  wait "$pid" || status=$?
  [ "${status:-0}" -eq 0 ]
  stored_exactly_once "$sent" "$table"
  grep -q '"spooled":[1-9]' "$BATS_TEST_TMPDIR/err"
  grep -q '"replayed":[1-9]' "$BATS_TEST_TMPDIR/err"
  grep -q "spooling" "$BATS_TEST_TMPDIR/err"
}

@test "a sink down and no spool: readings are counted lost and the exit status says so" {
  run --separate-stderr sensor-push --source sim --once --connect-timeout 1s --to "mysql://envkit@127.0.0.1:$(free_port)/envkit?table=x"
  [ "$status" -eq 69 ]
  [[ $stderr == *"20 records not delivered and no --spool to keep them"* ]]
}

@test "a sink down with a spool: kept for the next run (exit 75), replayed in order when it is back" {
  spool=$BATS_TEST_TMPDIR/spool
  stop_nginx nginx
  run --separate-stderr sensor-push --source sim --count 60 --spool "$spool" --connect-timeout 1s --to "$proxied"
  start_nginx_stream nginx "127.0.0.1:$MARIADB_PORT"
  [ "$status" -eq 75 ]
  [[ $stderr == *"60 records wait in the spool for the next run"* ]]
  # The next run replays the 60 first, then pushes its own reading (a city of its own: a new id).
  run --separate-stderr sensor-push --source sim --once --city 'Isla Gorgona:2.97:-78.18' --spool "$spool" --to "$proxied" --stats
  assert_success
  [[ $stderr == *'"replayed":60'* ]]
  [ "$(sql "SELECT COUNT(*) FROM $table")" -eq 61 ]
  [ "$(sql "SELECT city FROM $table ORDER BY row_id DESC LIMIT 1")" = "Isla Gorgona" ]
}

@test "a misconfigured sink stops the run with exit 78, its records kept in the spool" {
  spool=$BATS_TEST_TMPDIR/spool
  run --separate-stderr sensor-push --source sim --once --spool "$spool" \
    --to "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=no_such_table"
  [ "$status" -eq 78 ]
  [[ $stderr == *"table 'no_such_table' does not exist"* ]]
  MYSQL_PWD=wrong run --separate-stderr sensor-push --source sim --once --spool "$spool" \
    --to "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=no_such_table"
  [ "$status" -eq 78 ]
  [[ $stderr == *"Access denied"* ]]
  # Nothing was lost: fixed (same sink URL, so the same spool), the next run delivers the 40
  # kept readings and its own 20.
  run --separate-stderr sensor-push --source sim --once --spool "$spool" --stats --create-table \
    --to "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit?table=no_such_table"
  assert_success
  [[ $stderr == *'"replayed":40'* ]]
  # A spool left by a sink URL not given now is pointed out, not silently forgotten.
  run --separate-stderr sensor-push --source sim --once --spool "$spool" --connect-timeout 1s \
    --to "mysql://envkit@127.0.0.1:$(free_port)/envkit?table=elsewhere"
  run --separate-stderr sensor-push --source sim --once --spool "$spool" --to -
  [[ $stderr == *"holds 20 records for a sink not given in this run"* ]]
}

@test "the spool full is a clear error, exit 74, and nothing already spooled is lost" {
  spool=$BATS_TEST_TMPDIR/spool
  run --separate-stderr sensor-push --source sim --count 2000 --batch 20 --spool "$spool" --spool-max 16K \
    --connect-timeout 1s --to "mysql://envkit@127.0.0.1:$(free_port)/envkit?table=x"
  [ "$status" -eq 74 ]
  [[ $stderr == *"is full"* ]]
  [[ $stderr != *"Try 'sensor-push --help'"* ]]
}

@test "into Redis: hashes under a key template with a TTL" {
  run --separate-stderr sensor-push --source sim --once --to "$REDIS_URL?key=weather:{city}&type=hash&ttl=300"
  assert_success
  [ "$(redis-cli -p "$REDIS_PORT" --scan --pattern 'weather:*' | wc -l)" -eq 20 ]
  run redis-cli -p "$REDIS_PORT" HGET "weather:Bogotá" city
  assert_output "Bogotá"
  ttl=$(redis-cli -p "$REDIS_PORT" TTL "weather:Medellín")
  ((ttl > 0 && ttl <= 300))
}

@test "into Redis: a stream capped by maxlen, a list, and plain strings keyed by id" {
  run --separate-stderr sensor-push --source sim --count 60 --to "$REDIS_URL?key=readings:stream&type=stream&maxlen=1000" \
    --to "$REDIS_URL?key=readings:{city}:list&type=list&ttl=60" --to "$REDIS_URL?key=reading:{id}"
  assert_success
  [ "$(redis-cli -p "$REDIS_PORT" XLEN readings:stream)" -eq 60 ]
  run redis-cli -p "$REDIS_PORT" XRANGE readings:stream - + COUNT 1
  assert_output --partial "city"
  [ "$(redis-cli -p "$REDIS_PORT" LLEN "readings:Cali:list")" -eq 3 ]
  [ "$(redis-cli -p "$REDIS_PORT" --scan --pattern 'reading:*' | wc -l)" -eq 60 ]
  run redis-cli -p "$REDIS_PORT" GET "$(redis-cli -p "$REDIS_PORT" --scan --pattern 'reading:Pasto@*' | head -n 1)"
  assert_output --partial '"city":"Pasto"'
}

@test "into an HTTP receiver, batched and one per request; a receiver failing at first is retried" {
  http_fixture_reset receiver
  run --separate-stderr sensor-push --source sim --count 100 --to "$RECEIVER_URL?batch=7"
  assert_success
  [ "$(wc -l < "$RECEIVER_OUT")" -eq 100 ]
  http_fixture_reset receiver
  run --separate-stderr sensor-push --source sim --count 20 --to "$RECEIVER_URL?batch=1"
  assert_success
  [ "$(wc -l < "$RECEIVER_OUT")" -eq 20 ]
  http_fixture_reset receiver
  http_fixture_mode receiver fail-first=2
  sent=$BATS_TEST_TMPDIR/sent.jsonl
  run --separate-stderr sensor-push --source sim --count 40 --spool "$BATS_TEST_TMPDIR/spool" --to "$RECEIVER_URL?batch=10" --to "file:$sent"
  # Two requests got 503; those records, and those that came while the sink was backed off,
  # waited in the spool, and the run's last replay (whatever the backoff) delivered them:
  # every record exactly once, nothing left for the next run.
  assert_success
  [ "$(wc -l < "$sent")" -eq 40 ]
  diff <(sent_ids "$sent") <(sent_ids "$RECEIVER_OUT")
  [ "$(wc -l < "$RECEIVER_OUT")" -eq 40 ]
}

@test "into RabbitMQ with publisher confirms: every record is in the queue" {
  export ENVKIT_AMQP_PASSWORD=$RABBITMQ_PASSWORD
  run --separate-stderr sensor-push --source sim --count 500 --to "$RABBITMQ_URL?queue=readings-$BATS_TEST_NUMBER" --stats
  assert_success
  [[ $stderr == *'"delivered":500'* ]]
  run rabbitmqctl_for rabbitmq list_queues -q name messages
  assert_output --regexp "readings-$BATS_TEST_NUMBER[[:space:]]+500"
  # A record read back with the real client is one of ours.
  run amqp-get --url "amqp://envkit:$RABBITMQ_PASSWORD@127.0.0.1:$RABBITMQ_PORT/%2f" -q "readings-$BATS_TEST_NUMBER"
  assert_success
  assert_output --partial '"source":"sim"'
}

@test "into Kafka (the librdkafka mock cluster) with acks=all: kcat reads every record back" {
  run --separate-stderr sensor-push --source sim --count 300 --template weather-tweets --cities guatemala \
    --to "kafka://$KAFKA_BOOTSTRAP/readings" --stats
  assert_success
  [[ $stderr == *'"delivered":300'* ]]
  run timeout 30 kcat -C -b "$KAFKA_BOOTSTRAP" -t readings -o beginning -e -q
  assert_success
  [ "${#lines[@]}" -eq 300 ]
  assert_output --partial '"municipality":"Chinautla"'
}

@test "SIGTERM mid-run: what was in flight is delivered or spooled, and a later run delivers it" {
  spool=$BATS_TEST_TMPDIR/spool
  sent=$BATS_TEST_TMPDIR/sent.jsonl
  http_fixture_reset receiver
  http_fixture_mode receiver slow=0.3
  sensor-push --source sim --rate 400 --duration 60s --batch 50 --spool "$spool" \
    --to "$RECEIVER_URL?batch=50" --to "file:$sent" 2>"$BATS_TEST_TMPDIR/err" &
  pid=$!
  sleep 2
  kill -TERM "$pid"
  wait "$pid" || status=$?
  [[ ${status:-0} -eq 0 || ${status:-0} -eq 75 ]]
  http_fixture_mode receiver ok
  run --separate-stderr sensor-push --source sim --once --spool "$spool" --to "$RECEIVER_URL?batch=50"
  assert_success
  # Every record the file sink saw reached the receiver (plus the last run's own 20).
  missing=$(comm -23 <(sent_ids "$sent") <(grep -o '"id":"[^"]*"' "$RECEIVER_OUT" | cut -d'"' -f4 | sort -u) | wc -l)
  [ "$missing" -eq 0 ]
  [ "$(wc -l < "$sent")" -ge 400 ]
}

@test "--metrics-file and --stats report the run" {
  run --separate-stderr sensor-push --source sim --once --to - --stats --metrics-file "$BATS_TEST_TMPDIR/sp.prom"
  assert_success
  [[ $stderr == *'"fetched":20,"pushed":20'* ]]
  run cat "$BATS_TEST_TMPDIR/sp.prom"
  assert_output --partial 'envkit_sensor_push_records_total{sink="-",outcome="delivered"} 20'
  assert_output --partial 'envkit_sensor_push_last_success_timestamp_seconds'
}
