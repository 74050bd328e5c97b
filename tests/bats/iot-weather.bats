#!/usr/bin/env bats
# The iot-weather scenario end to end (scenarios/iot-weather/run, as scripts/demo runs it):
# every step's verdict, and proof that its loss checks fail when a reading is lost.

bats_require_minimum_version 1.5.0

setup_file() {
  load ../lib/test_helper
  export SCENARIO=$ENVKIT_SOURCE_DIR/scenarios/iot-weather
  export IOT_WORK=$BATS_FILE_TMPDIR/iot
  # One run of the whole scenario, kept running so the tests below can inspect it and
  # break it on purpose. Its report goes to a file; its exit status is asserted below.
  local status=0
  "$SCENARIO/run" --offline --keep --port 0 --workdir "$IOT_WORK" --json "$IOT_WORK/report.json" \
    --interval 2s --backup-every 3s --outage 6 >"$IOT_WORK.stdout" 2>"$IOT_WORK.stderr" || status=$?
  echo "$status" >"$IOT_WORK.status"
}

teardown_file() {
  load ../lib/test_helper
  "$SCENARIO/run" --stop "$IOT_WORK"
}

setup() {
  load ../lib/test_helper
  load ../lib/http_fixtures
  export ENVKIT_SERVERS_DIR=$IOT_WORK/servers
}

teardown() {
  stop_http_fixtures
}

# The README's lines fetch real weather: here the recorded-format Open-Meteo stand-in serves
# it, at a time of its own so that its readings are new to the database. ENVKIT_API_URL is
# the environment form of --api-url, so the lines themselves stay as written.
serve_weather_at() {
  start_openmeteo_server --now "$1"
  export ENVKIT_API_URL=$OPENMETEO_URL
}

# The verdict of STEP in the JSON report: "true" or "false".
step_ok() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(str(s["ok"]).lower() for s in r["steps"] if s["step"]==sys.argv[2]))' \
    "$IOT_WORK/report.json" "$1"
}
figure() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(s["figures"][sys.argv[3]] for s in r["steps"] if s["step"]==sys.argv[2]))' \
    "$IOT_WORK/report.json" "$1" "$2"
}

@test "the scenario passes and prints a report a person can read" {
  [ "$(<"$IOT_WORK.status")" -eq 0 ] || { cat "$IOT_WORK.stderr"; false; }
  run cat "$IOT_WORK.stdout"
  assert_line --regexp '^iot-weather: PASS  \(6 steps, [0-9]+ s, weather from sim\)$'
  assert_line --regexp '^  ok   tunnel '
  assert_line --regexp '^  ok   disaster '
}

@test "tunnel: proxy-check logs in through the proxy; the database port is not exposed" {
  [ "$(step_ok tunnel)" = true ]
  [ "$(figure tunnel passed)" -eq 2 ]
  # The database listens on no TCP port at all: only its socket.
  run mariadb_for cloud -N -e 'SELECT @@skip_networking, @@global.time_zone'
  assert_output $'1\tAmerica/Bogota'
}

@test "workers: readings arrive through the tunnel and backups are taken" {
  [ "$(step_ok workers)" = true ]
  [ "$(figure workers backups)" -ge 2 ]
}

@test "chaos: every reading due while the database was down is stored exactly once" {
  [ "$(step_ok chaos)" = true ]
  [ "$(figure chaos in_window)" -gt 0 ]
  [ "$(figure chaos missing)" -eq 0 ]
  [ "$(figure chaos duplicated)" -eq 0 ]
}

@test "chaos: the loss check fails when a reading is deleted" {
  local victim tsv=$BATS_TEST_TMPDIR/rows.tsv
  read -r from to <"$IOT_WORK/checks/outage-lines"
  # A reading sent during the outage, stored now, that the check must then miss.
  victim=$(sed -n "$((from + 1))p" "$IOT_WORK/sent.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  [ -n "$victim" ]
  mariadb_for cloud -e "DELETE FROM iot.readings WHERE id = '$victim'"
  mariadb_for cloud -N -B -e 'SELECT id FROM iot.readings' >"$tsv"
  run -1 python3 "$SCENARIO/reconcile.py" stored "$IOT_WORK/sent.jsonl" "$tsv" \
    --allowed-missing "$IOT_WORK/checks/lost-with-disaster" --lines "$from" "$to"
  assert_output --partial '"missing": 1'
  assert_output --partial "$victim"
}

@test "chaos: the duplicate check fails when a reading is stored twice" {
  local tsv=$BATS_TEST_TMPDIR/rows.tsv
  mariadb_for cloud -N -B -e 'SELECT id FROM iot.readings' >"$tsv"
  head -n 1 "$tsv" >>"$tsv"
  run -1 python3 "$SCENARIO/reconcile.py" stored "$IOT_WORK/sent.jsonl" "$tsv" \
    --allowed-missing "$IOT_WORK/checks/lost-with-disaster"
  assert_output --partial '"duplicated": 1'
}

@test "disaster: the restored database holds every reading of the last backup, same checksum" {
  [ "$(step_ok disaster)" = true ]
  [ "$(figure disaster rows_in_backup)" -gt 0 ]
  [ "$(figure disaster rows_in_backup)" -eq "$(figure disaster rows_restored)" ]
  [ "$(figure disaster digest_before)" = "$(figure disaster digest_after)" ]
}

@test "disaster: the checksum differs when one restored reading is changed" {
  local victim tsv=$BATS_TEST_TMPDIR/rows.tsv
  victim=$(head -n 1 "$IOT_WORK/checks/backup-ids")
  cp "$IOT_WORK/checks/rows-after-restore.tsv" "$tsv"
  # The same rows with one temperature off by a tenth.
  python3 - "$tsv" "$victim" <<'EOF'
import sys
path, victim = sys.argv[1], sys.argv[2]
lines = open(path).read().splitlines(True)
with open(path, "w") as f:
    for line in lines:
        cols = line.rstrip("\n").split("\t")
        if cols[0] == victim:
            cols[3] = str(round(float(cols[3]) + 0.1, 1))
        f.write("\t".join(cols) + "\n")
EOF
  run -0 python3 "$SCENARIO/reconcile.py" digest "$tsv" "$IOT_WORK/checks/backup-ids"
  [ "${output#* }" != "$(figure disaster digest_before)" ]
  [ "${output%% *}" -eq "$(figure disaster rows_in_backup)" ]
}

@test "carry on: sensor-push goes on after the restore and nothing else is missing" {
  [ "$(step_ok carry-on)" = true ]
  [ "$(figure carry-on missing)" -eq 0 ]
}

@test "backups: every backup taken was verified" {
  [ "$(step_ok backups)" = true ]
  [ "$(figure backups verified)" -eq "$(figure backups taken)" ]
}

@test "with real weather (the recorded-format Open-Meteo stand-in), every step passes too" {
  # Real weather keeps the API's observation time for 15 minutes: rounds repeat readings,
  # which the database absorbs; the checks count what was sent, not new rows.
  serve_weather_at 2031-06-01T12:00:00Z
  run -0 --separate-stderr "$SCENARIO/run" --port 0 --workdir "$BATS_TEST_TMPDIR/real" \
    --interval 2s --backup-every 3s --outage 4
  assert_line --regexp '^iot-weather: PASS  \(6 steps, [0-9]+ s, weather from open-meteo\)$'
  [[ ${stderr} == *"Open-Meteo is reachable"* ]]
  # It cleaned up after itself: no server left in its directory.
  [ ! -e "$BATS_TEST_TMPDIR/real" ]
}

@test "run: --help, and a usage error is exit 64" {
  run -0 "$SCENARIO/run" --help
  assert_output --partial 'Usage: scenarios/iot-weather/run'
  run -64 --separate-stderr "$SCENARIO/run" --outage soon
  [ "${stderr_lines[0]}" = "iot-weather: error: --outage needs whole seconds" ]
}

# --- the README's cron and daemon lines, run against this scenario's servers ---------------

# The fenced block with info string $1 under the README's cron/daemon heading, with the host,
# port and paths of this run swapped in: nothing else of a line is changed.
readme_lines() {
  local port dir=$BATS_TEST_TMPDIR
  port=$(figure tunnel port)
  python3 - "$ENVKIT_SOURCE_DIR/README.md" "$1" <<'PY' | sed -e "s#cloud.example:33060#127.0.0.1:$port#g" \
    -e "s#cloud.example#127.0.0.1#g" -e "s#/etc/envkit/#$IOT_WORK/secrets/#g" -e "s#secrets/\([a-z]*\)\.pw#secrets/\1#g" \
    -e "s#/var/spool/envkit/#$dir/spool/#g" -e "s#/var/backups/iot#$dir/backups#g" \
    -e "s#/var/lib/prometheus/node-exporter/#$dir/metrics/#g"
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
section = text.split("### The same environment from cron, or as daemons", 1)[1]
block = re.search(r"```" + re.escape(sys.argv[2]) + r"\n(.*?)```", section, re.S)
print(block.group(1), end="")
PY
}

# The scenario's own workers stop, so that what changes next is the README lines' doing.
stop_scenario_workers() {
  local name pid
  for name in sensor-push db-backup; do
    [[ -s $IOT_WORK/pids/$name ]] || continue
    pid=$(<"$IOT_WORK/pids/$name")
    kill -TERM "$pid" 2>/dev/null || true
    rm -f "$IOT_WORK/pids/$name"
  done
  sleep 1
}

rows() { mariadb_for cloud -N -B -e 'SELECT COUNT(*) FROM iot.readings'; }

@test "README: the crontab lines work as cron runs them, quietly" {
  stop_scenario_workers
  serve_weather_at 2031-01-01T12:00:00Z
  mkdir -p "$BATS_TEST_TMPDIR/metrics"
  readme_lines crontab >"$BATS_TEST_TMPDIR/crontab"
  local -a env_assignments=()
  local line command ran=0 before
  while IFS= read -r line; do
    [[ $line =~ ^[A-Z_]+= ]] && env_assignments+=("$line")
  done <"$BATS_TEST_TMPDIR/crontab"
  [ "${#env_assignments[@]}" -ge 1 ]
  before=$(rows)
  while IFS= read -r line; do
    [[ $line =~ ^[0-9*] ]] || continue
    # Five time fields and the user, as in /etc/cron.d; the rest goes to /bin/sh.
    command=$(sed -E 's/^([^ ]+ +){6}//' <<<"$line")
    run -0 env "${env_assignments[@]}" PATH="$PATH" ENVKIT_API_URL="$ENVKIT_API_URL" /bin/sh -c "$command"
    [ -z "$output" ] || { echo "cron would mail: $output"; false; }
    ran=$((ran + 1))
  done <"$BATS_TEST_TMPDIR/crontab"
  [ "$ran" -eq 3 ]
  [ "$(rows)" -gt "$before" ]
  run -0 db-backup verify "$BATS_TEST_TMPDIR/backups"
  grep -q '^[a-z_]*last_success' "$BATS_TEST_TMPDIR/metrics/iot_backup.prom"
}

@test "README: the daemon lines work, and stop on SIGTERM" {
  stop_scenario_workers
  serve_weather_at 2032-01-01T12:00:00Z
  mkdir -p "$BATS_TEST_TMPDIR/metrics" "$BATS_TEST_TMPDIR/logs"
  readme_lines sh >"$BATS_TEST_TMPDIR/daemons"
  [ "$(grep -c . "$BATS_TEST_TMPDIR/daemons")" -eq 3 ]
  local line i=0 before pid
  local -a pids=()
  before=$(rows)
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    i=$((i + 1))
    setsid /bin/sh -c "exec $line" </dev/null >"$BATS_TEST_TMPDIR/logs/$i.out" 2>"$BATS_TEST_TMPDIR/logs/$i.err" 3>&- &
    pids+=($!)
  done <"$BATS_TEST_TMPDIR/daemons"
  # A round every 15 s on the clock's grid: a reading within 20 s; the first backup and the
  # first check at once.
  local deadline=$((SECONDS + 40))
  until (($(rows) > before)) && compgen -G "$BATS_TEST_TMPDIR/backups/*/manifest.json" >/dev/null &&
    grep -q 'OK' "$BATS_TEST_TMPDIR/logs/3.out"; do
    ((SECONDS < deadline)) || { tail -n 5 "$BATS_TEST_TMPDIR"/logs/*; kill -KILL "${pids[@]}"; false; }
    sleep 0.5
  done
  kill -TERM "${pids[@]}"
  for pid in "${pids[@]}"; do
    deadline=$((SECONDS + 15))
    while [[ -r /proc/$pid/stat && $(awk '{ print $3 }' "/proc/$pid/stat") != Z ]]; do
      ((SECONDS < deadline)) || { kill -KILL "$pid"; echo "pid $pid ignored SIGTERM"; false; }
      sleep 0.2
    done
  done
  run -0 db-backup verify "$BATS_TEST_TMPDIR/backups"
}
