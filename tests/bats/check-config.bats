#!/usr/bin/env bats
# --check-config in every command: what a run would accept passes silently with 0, what it
# would refuse fails with the run's one-line error and status, and nothing is connected to,
# created or written.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup() {
  cd "$BATS_TEST_TMPDIR" || return 1
  printf 's3cret\n' >pw
  cat >cities.yaml <<'YAML'
- {name: Bogotá, latitude: 4.711, longitude: -74.0721, elevation: 2640}
YAML
}

# A loopback listener that never accepts until asked: connections a command makes complete
# in its backlog and are counted afterwards, with no waiting. Sets LISTEN_PORT; the count
# comes from listener_count.
start_listener() {
  rm -f ctl listener.out
  mkfifo ctl
  python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
s.setblocking(False)
n = 0
while True:
    try: s.accept(); n += 1
    except BlockingIOError: break
print(n, flush=True)
' <ctl >listener.out 7>&- &
  LISTENER_PID=$!
  exec 7>ctl  # not 3: bats reports on fd 3
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s listener.out ]] && break
    read -r -t 0.05 <> <(:) || true  # a bounded 50 ms pause
  done
  LISTEN_PORT=$(head -1 listener.out)
  [[ -n $LISTEN_PORT ]]
}

# Sets LISTENER_COUNT: how many connections the listener got.
listener_count() {
  echo done >&7
  exec 7>&-
  wait "$LISTENER_PID"
  LISTENER_COUNT=$(sed -n 2p listener.out)
}

# Every envkit command this build has (options.hpp's list).
built_commands() {
  local c
  for c in sensor-push db-backup proxy-check shard-route race-probe queue-relay; do
    [[ -x $ENVKIT_BUILD_DIR/bin/$c ]] && echo "$c"
  done
}

@test "every command documents --check-config in --help and its man page" {
  for cmd in $(built_commands); do
    run -0 "$cmd" --help
    assert_output --partial "--check-config"
    run -0 grep -c 'check\\-config' "$ENVKIT_SOURCE_DIR/man/$cmd.1"
  done
}

@test "sensor-push --check-config: a good command line is silent and exits 0" {
  run -0 --separate-stderr sensor-push --check-config --every 15s --spool "$PWD/spool" \
    --password-file pw --cities-file cities.yaml \
    --to 'mysql://weather@127.0.0.1:33060/iot?table=readings&create=true' \
    --to 'redis://127.0.0.1:6379/0?key=weather:{city}' --to 'http://127.0.0.1:8080/in?batch=10' \
    --to "file:$PWD/out/readings.jsonl" --metrics-file "$PWD/m.prom"
  assert_output ''
  [[ -z $stderr ]]
  # Nothing was created: no spool, no file sink, no metrics file.
  assert_not_exists spool out m.prom
}

@test "sensor-push --check-config: fails as a run would" {
  run -64 sensor-push --check-config --bogus --to -
  assert_output --partial "sensor-push: error: unrecognised option '--bogus'"
  run -64 sensor-push --check-config --to 'mysql://weather@127.0.0.1/iot'
  assert_output --partial 'name the table'
  run -64 sensor-push --check-config --to 'redis://127.0.0.1/0'
  assert_output --partial 'name the key'
  run -64 sensor-push --check-config --to 'gopher://x/'
  run -64 sensor-push --check-config --once --every 15s --to -
  # A load generator runs until stopped only when asked by name: --duration 0.
  run -64 sensor-push --check-config --source sim --rate 10 --to -
  assert_output --partial 'or --duration 0 to run until stopped'
  run -0 sensor-push --check-config --source sim --rate 10 --duration 0 --to -
  run -64 sensor-push --check-config --city Atlantis --to -
  run -64 sensor-push --check-config --field nope=nothing --to -
  run -66 sensor-push --check-config --cities-file missing.yaml --to -
  printf -- '- {name: X}\n' >bad-cities.yaml
  run -65 sensor-push --check-config --cities-file bad-cities.yaml --to -
  run -66 sensor-push --check-config --password-file missing.pw --to 'mysql://w@h/iot?table=t'
  run -66 sensor-push --check-config --tls-ca missing.pem --to -
  printf 'every: [\n' >bad.yaml
  run -78 sensor-push --check-config --config bad.yaml --to -
  printf 'no-such-option: 1\n' >unknown.yaml
  run -78 sensor-push --check-config --config unknown.yaml --to -
  assert_output --partial "unknown option 'no-such-option'"
}

@test "db-backup --check-config: every subcommand, good and bad" {
  run -0 --separate-stderr db-backup dump --check-config --from mysql://backup@127.0.0.1:33060/iot \
    --password-file pw --out "$PWD/backups" --every 10m --keep-last 144 --compress zstd
  assert_output ''
  [[ -z $stderr ]]
  assert_not_exists backups
  run -0 db-backup restore --check-config --from "$PWD/none" --to mysql://root@127.0.0.1/iot
  run -0 db-backup verify --check-config "$PWD/none" --against redis://127.0.0.1/0
  run -0 db-backup list --check-config "$PWD/none"
  run -0 db-backup prune --check-config "$PWD/none" --keep-last 3 --dry-run
  run -64 db-backup dump --check-config --from mysql://b@h/iot
  assert_output --partial 'dump needs --out DIR'
  run -64 db-backup dump --check-config --from mysql://b@h/iot --out x --compress lz4
  run -64 db-backup dump --check-config --from ftp://h/iot --out x
  run -64 db-backup dump --check-config --from mysql://b@h/iot --out x --replace
  assert_output --partial "--replace does not go with 'db-backup dump'"
  run -64 db-backup bogus --check-config
  run -66 db-backup dump --check-config --from mysql://b@h/iot --out x --password-file missing.pw
}

@test "proxy-check --check-config: targets and groups, good and bad" {
  cat >targets.yaml <<'YAML'
groups:
  - name: app
    healthy_threshold: 2
    targets:
      - http://127.0.0.1:8080/health?match=ok
      - {url: "tcp://127.0.0.1:3306", expect: closed}
YAML
  run -0 --separate-stderr proxy-check --check-config --password-file pw --config targets.yaml \
    --state-file "$PWD/state" --metrics-file "$PWD/m.prom" \
    mysql://weather@127.0.0.1:33060/iot 'tcp://127.0.0.1:3306?expect=closed'
  assert_output ''
  [[ -z $stderr ]]
  assert_not_exists state m.prom
  # Bad configuration is UNKNOWN, as for any proxy-check run.
  run -3 proxy-check --check-config 'ftp://127.0.0.1/'
  run -3 proxy-check --check-config --format xml tcp://127.0.0.1:1
  run -3 proxy-check --check-config 'https://127.0.0.1/?tls-ca=/missing/ca.pem&warn-days=x'
  printf 'groups:\n  - name: g\n    targets: []\n' >empty.yaml
  run -3 proxy-check --check-config --config empty.yaml
  assert_output --partial 'needs a list of targets'
}

@test "queue-relay --check-config: source, sinks and dead letters, good and bad" {
  [[ -x $ENVKIT_BUILD_DIR/bin/queue-relay ]] || skip "queue-relay is not built"
  run -0 --separate-stderr queue-relay --check-config --from 'redis://127.0.0.1:6379/0?stream=tweets&group=relay' \
    --password-file pw --to 'mysql://w@127.0.0.1/iot?table=t' --to "file:$PWD/out.jsonl" \
    --dead-letter "file:$PWD/dead.jsonl" --spool "$PWD/spool"
  assert_output ''
  [[ -z $stderr ]]
  assert_not_exists out.jsonl dead.jsonl spool
  run -64 queue-relay --check-config --from 'mysql://w@127.0.0.1/iot?table=t' --to -
  assert_output --partial 'cannot read records from a mysql URL'
  # HTTP ingest is a source: checked, but nothing listens.
  port=$(free_port)
  run -0 queue-relay --check-config --from "http://127.0.0.1:$port/reports" --to -
  run curl -s -o /dev/null "http://127.0.0.1:$port/reports"
  [ "$status" -eq 7 ]  # curl: could not connect
  run -64 queue-relay --check-config --from - --to 'redis://127.0.0.1/0'
  assert_output --partial 'name the key'
  run -64 queue-relay --check-config --from - --to - --bogus
  run -66 queue-relay --check-config --from 'redis://127.0.0.1/0?stream=s' --password-file missing.pw --to -
}

@test "--check-config connects to nothing, even where a run would connect at once" {
  start_listener
  local p=$LISTEN_PORT
  run -0 sensor-push --check-config --password-file pw --to "mysql://w@127.0.0.1:$p/iot?table=t" \
    --to "redis://127.0.0.1:$p/0?key=k" --to "http://127.0.0.1:$p/in" --to "amqp://u@127.0.0.1:$p/%2f?queue=q" \
    --to "kafka://127.0.0.1:$p/topic" --api-url "http://127.0.0.1:$p/v1/forecast"
  run -0 db-backup dump --check-config --from "mysql://b@127.0.0.1:$p/iot" --out x --password-file pw
  run -0 db-backup verify --check-config x --against "mongodb://127.0.0.1:$p/iot"
  run -0 proxy-check --check-config --password-file pw "mysql://w@127.0.0.1:$p/iot" "tcp://127.0.0.1:$p" \
    "http://127.0.0.1:$p/" "redis://127.0.0.1:$p" "kafka://127.0.0.1:$p" "mongodb://127.0.0.1:$p/x" \
    "tcp://127.0.0.1:$p?expect=closed"
  run -0 proxy-check --check-config "redis://127.0.0.1:$p" --via "tcp://127.0.0.1:$p"
  if [[ -x $ENVKIT_BUILD_DIR/bin/queue-relay ]]; then
    run -0 queue-relay --check-config --password-file pw --from "redis://127.0.0.1:$p/0?stream=s" \
      --to "mysql://w@127.0.0.1:$p/iot?table=t" --to "kafka://127.0.0.1:$p/topic" \
      --dead-letter "amqp://u@127.0.0.1:$p/%2f?queue=dead"
  fi
  listener_count
  [[ $LISTENER_COUNT == 0 ]]
  # The listener does count: a real check connects.
  start_listener
  run -0 proxy-check -q "tcp://127.0.0.1:$LISTEN_PORT"
  listener_count
  [[ $LISTENER_COUNT == 1 ]]
}

@test "ENVKIT_CHECK_CONFIG is not an option: a stray variable never turns a daemon into a check" {
  ENVKIT_CHECK_CONFIG=1 run -0 --separate-stderr sensor-push --source sim --count 1 --to -
  assert_output --partial '"city"'
}
