#!/usr/bin/env bats
# Proves the HTTP fixture servers (tests/lib/openmeteo_server.py, http_receiver.py) and their helper (http_fixtures.bash) with curl.

bats_require_minimum_version 1.5.0

load ../lib/test_helper
load ../lib/http_fixtures

# The clock of the Open-Meteo stand-in: 11:45 in Bogotá (UTC-5), the 15-minute step of 16:50Z.
NOW=2026-11-22T16:50Z
BOGOTA='latitude=4.711&longitude=-74.0721'

setup_file() {
  start_openmeteo_server --now "$NOW"
  start_openmeteo_server recorded --now "$NOW" --fixtures "$ENVKIT_SOURCE_DIR/tests/fixtures/open-meteo"
  start_http_receiver --status 201
}

teardown_file() {
  stop_http_fixtures
}

setup() {
  http_fixture_reset openmeteo recorded receiver
}

# Body, a newline, then the HTTP status; bounded like every request here.
fetch() {
  curl -sS --max-time 10 -w '\n%{http_code}' "$@"
}

# A Python expression over the JSON on stdin (bound to `d`), printed as JSON unless a string.
# -S: no site-packages to scan, half the start-up time.
json_eval() {
  "$ENVKIT_PYTHON" -S -c '
import json, sys
d = json.load(sys.stdin)
r = eval(sys.argv[1])
print(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False))' "$1"
}

# generationtime_ms, the one field that differs between runs, as G.
without_generation_time() {
  sed -E 's/"generationtime_ms":[0-9]+\.[0-9]+(e-?[0-9]+)?,/"generationtime_ms":G,/g'
}

elapsed_ms() {
  echo $(((${EPOCHREALTIME/./} - ${1/./}) / 1000))
}

# --- Open-Meteo stand-in ------------------------------------------------------------

@test "openmeteo: one city is one object in the API's exact shape, values from its coordinates" {
  run -0 fetch "$OPENMETEO_URL?$BOGOTA&current=temperature_2m,relative_humidity_2m,precipitation,is_day&timezone=America/Bogota"
  assert_line --index 1 200
  run -0 without_generation_time <<<"${lines[0]}"
  assert_output '{"latitude":4.6875,"longitude":-74.0625,"generationtime_ms":G,"utc_offset_seconds":-18000,"timezone":"America/Bogota","timezone_abbreviation":"GMT-5","elevation":2640.0,"current_units":{"time":"iso8601","interval":"seconds","temperature_2m":"°C","relative_humidity_2m":"%","precipitation":"mm","is_day":""},"current":{"time":"2026-11-22T11:45","interval":900,"temperature_2m":14.2,"relative_humidity_2m":71,"precipitation":0.00,"is_day":1}}'
}

@test "openmeteo: a list of cities is an array in request order, Barranquilla hot and Bogotá cool" {
  local current='current=temperature_2m&timezone=America/Bogota'
  run -0 fetch "$OPENMETEO_URL?latitude=10.9685,4.711,6.2442&longitude=-74.7813,-74.0721,-75.5812&$current"
  assert_line --index 1 200
  run -0 json_eval '[[o["latitude"], o["elevation"], o["current"]["temperature_2m"]] for o in d]' <<<"${lines[0]}"
  assert_output '[[10.9375, 18.0, 30.4], [4.6875, 2640.0, 14.2], [6.25, 1495.0, 21.5]]'

  run -0 fetch "$OPENMETEO_URL?latitude=6.2442,4.711,10.9685&longitude=-75.5812,-74.0721,-74.7813&$current"
  run -0 json_eval '[o["current"]["temperature_2m"] for o in d]' <<<"${lines[0]}"
  assert_output '[21.5, 14.2, 30.4]'
}

@test "openmeteo: timezone=auto, other zones and units follow the real API" {
  run -0 fetch "$OPENMETEO_URL?latitude=28.6139,52.52&longitude=77.209,13.41&timezone=auto&current=temperature_2m,wind_speed_10m&temperature_unit=fahrenheit&wind_speed_unit=ms"
  run -0 json_eval '[[o["timezone"], o["timezone_abbreviation"], o["utc_offset_seconds"], o["current"]["time"], o["current_units"]["temperature_2m"], o["current_units"]["wind_speed_10m"]] for o in d]' <<<"${lines[0]}"
  assert_output '[["Asia/Kolkata", "GMT+5:30", 19800, "2026-11-22T22:15", "°F", "m/s"], ["Europe/Berlin", "GMT+1", 3600, "2026-11-22T17:45", "°F", "m/s"]]'
}

@test "openmeteo: invalid parameters are HTTP 400 with Open-Meteo's own error body" {
  run -0 fetch "$OPENMETEO_URL?latitude=91&longitude=0"
  assert_output $'{"error":true,"reason":"Latitude must be in range of -90 to 90°. Given: 91.0."}\n400'
  run -0 fetch "$OPENMETEO_URL?latitude=4.7,6.2&longitude=-74.1"
  assert_output $'{"error":true,"reason":"Parameter \'latitude\' and \'longitude\' must have the same number of elements"}\n400'
  run -0 fetch "$OPENMETEO_URL?latitude=4.7&longitude=-200"
  assert_output $'{"error":true,"reason":"Longitude must be in range of -180 to 180°. Given: -200.0."}\n400'
  run -0 fetch "$OPENMETEO_URL?latitude=abc&longitude=1"
  assert_output $'{"error":true,"reason":"Data corrupted at path \'\'. Cannot initialize Float from invalid String value abc."}\n400'
  run -0 fetch "$OPENMETEO_URL?$BOGOTA&current=temperature_2m,tempreature"
  assert_line --index 0 --partial 'from invalid String value temperature_2m,tempreature."}'
  assert_line --index 1 400
  run -0 fetch "$OPENMETEO_URL?$BOGOTA&timezone=Mars/Olympus"
  assert_output $'{"error":true,"reason":"Invalid timezone"}\n400'
  run -0 http_fixture_stats openmeteo
  run -0 json_eval '[d["requests"], d["by_outcome"]]' <<<"$output"
  assert_output '[6, {"bad-request": 6}]'
}

@test "openmeteo: 429-then-ok=2 by query parameter: two 429s with Retry-After, then the forecast" {
  local i
  for i in 1 2; do
    run -0 curl -sS --max-time 10 -D - "$OPENMETEO_URL?$BOGOTA&current=temperature_2m&_mode=429-then-ok=2"
    assert_line --index 0 --regexp '^HTTP/1.1 429 '
    assert_line --regexp '^Retry-After: 1'
    assert_line '{"error":true,"reason":"Minutely API request limit exceeded. Please try again in one minute."}'
  done
  run -0 fetch "$OPENMETEO_URL?$BOGOTA&current=temperature_2m&_mode=429-then-ok=2"
  assert_line --index 1 200
  run -0 http_fixture_stats openmeteo
  run -0 json_eval '[d["requests"], d["by_mode"], d["by_outcome"]]' <<<"$output"
  assert_output '[3, {"429-then-ok=2": 3}, {"429": 2, "ok": 1}]'
}

@test "openmeteo: modes by header, by path prefix and for the whole server" {
  run -0 fetch -H 'X-Fixture-Mode: 500-then-ok=1' "$OPENMETEO_URL?$BOGOTA"
  assert_output $'{"error":true,"reason":"Something went wrong."}\n500'
  run -0 fetch -H 'X-Fixture-Mode: 500-then-ok=1' "$OPENMETEO_URL?$BOGOTA"
  assert_line --index 1 200

  # For a client that builds the query itself: the mode rides in the base URL's path.
  run -0 fetch "$OPENMETEO_BASE_URL/_mode/503/v1/forecast?$BOGOTA"
  assert_line --index 1 503

  http_fixture_mode openmeteo 500
  run -0 fetch "$OPENMETEO_URL?$BOGOTA"
  assert_line --index 1 500
  http_fixture_mode openmeteo ok
  run -0 fetch "$OPENMETEO_URL?$BOGOTA"
  assert_line --index 1 200

  run -1 http_fixture_mode openmeteo 418-then-maybe
  assert_output --partial "refused mode '418-then-maybe'"
  run -0 fetch "$OPENMETEO_URL?$BOGOTA&_mode=teapot"
  assert_line --index 0 --partial "fixture: unknown mode 'teapot'"
  assert_line --index 1 400
}

@test "openmeteo: slow=1 answers after a second; a client with a shorter timeout gives up" {
  local start=$EPOCHREALTIME
  run -0 fetch "$OPENMETEO_URL?$BOGOTA&_mode=slow=1"
  assert_line --index 1 200
  local ms
  ms=$(elapsed_ms "$start")
  ((ms >= 1000 && ms < 5000))

  start=$EPOCHREALTIME
  run -28 curl -sS --max-time 0.3 "$OPENMETEO_URL?$BOGOTA&_mode=slow=1"
  ms=$(elapsed_ms "$start")
  ((ms < 1000))

  # Bounded: a test cannot make the server sleep for long by mistake.
  run -0 fetch "$OPENMETEO_URL?$BOGOTA&_mode=slow=600"
  assert_line --index 1 400
}

@test "openmeteo: malformed, truncated, error-body, drop and reset fail the way clients see it" {
  run -0 fetch "$OPENMETEO_URL?$BOGOTA&current=temperature_2m&_mode=malformed"
  assert_line --index 1 200
  run -1 json_eval 'd' <<<"${lines[0]}"

  run -18 curl -sS --max-time 10 "$OPENMETEO_URL?$BOGOTA&_mode=truncated"
  assert_output --partial 'transfer closed with'

  run -0 fetch "$OPENMETEO_URL?$BOGOTA&_mode=error-body"
  assert_output $'{"error":true,"reason":"No data is available for this location"}\n200'

  run -52 curl -sS --max-time 10 "$OPENMETEO_URL?$BOGOTA&_mode=drop"
  assert_output --partial 'Empty reply from server'

  run -56 curl -sS --max-time 10 "$OPENMETEO_URL?$BOGOTA&_mode=reset"

  run -0 http_fixture_stats openmeteo
  run -0 json_eval 'd["by_outcome"]' <<<"$output"
  assert_output '{"malformed": 1, "truncated": 1, "error-body": 1, "drop": 1, "reset": 1}'
}

@test "openmeteo: /_stats counts requests and locations: 40 cities in batches of 20 are 2 requests" {
  local batch lats lons i
  for batch in 0 1; do
    lats='' lons=''
    for ((i = 0; i < 20; i++)); do
      lats+="${lats:+,}$((batch * 20 + i)).5"
      lons+="${lons:+,}-7$((i % 10)).25"
    done
    run -0 fetch "$OPENMETEO_URL?latitude=$lats&longitude=$lons&current=temperature_2m"
    assert_line --index 1 200
    run -0 json_eval 'len(d)' <<<"${lines[0]}"
    assert_output 20
  done
  run -0 http_fixture_stats openmeteo
  run -0 json_eval '[d["requests"], d["locations"], d["locations_per_request"], d["by_outcome"]]' <<<"$output"
  assert_output '[2, 40, [20, 20], {"ok": 2}]'
}

@test "openmeteo: a server started with --mode applies it to every request, exports under its NAME" {
  start_openmeteo_server limited --mode 429-then-ok=1 --retry-after 7
  [[ $LIMITED_URL == "http://127.0.0.1:$LIMITED_PORT/v1/forecast" ]]
  run -0 curl -sS --max-time 10 -D - -o /dev/null "$LIMITED_URL?$BOGOTA"
  assert_line --index 0 --regexp '^HTTP/1.1 429 '
  assert_line --regexp '^Retry-After: 7'
  run -0 fetch "$LIMITED_URL?$BOGOTA"
  assert_line --index 1 200
  stop_http_fixture limited
}

@test "openmeteo --fixtures: recorded responses answer their cities, by location or byte for byte" {
  local fixtures=$ENVKIT_SOURCE_DIR/tests/fixtures/open-meteo
  run -0 fetch "$RECORDED_URL?latitude=10.391,4.711,52.52&longitude=-75.4794,-74.0721,13.41&current=temperature_2m,precipitation&timezone=America/Bogota"
  local body=${lines[0]}
  # Recorded numbers keep their text.
  assert_line --index 0 --partial '"current":{"time":"2026-11-22T11:45","interval":900,"temperature_2m":15.3,"precipitation":0.00}'
  run -0 json_eval '[[o["latitude"], o["current"]["temperature_2m"], o["current"]["precipitation"]] for o in d]' <<<"$body"
  # Cartagena and Bogotá from the recording, Berlin (not recorded) from the model.
  assert_output '[[10.396729, 30.2, 0.3], [4.7451673, 15.3, 0.0], [52.5, 9.2, 0.41]]'

  run -0 curl -sS --max-time 10 -o "$BATS_TEST_TMPDIR/five.json" "$RECORDED_URL?_fixture=colombia-5-cities&$BOGOTA"
  run -0 cmp "$BATS_TEST_TMPDIR/five.json" "$fixtures/colombia-5-cities.json"

  run -0 fetch "$RECORDED_URL?_fixture=no-such-recording&$BOGOTA"
  assert_line --index 1 404
  assert_line --index 0 --partial 'have: bogota, colombia-5-cities, error-rate-limit'

  run -0 http_fixture_stats recorded
  run -0 json_eval '[d["fixture_hits"], d["fixture_misses"]]' <<<"$output"
  assert_output '[2, 1]'
}

@test "recorded fixtures are the API's shape: parseable, one object or an array of them" {
  local fixtures=$ENVKIT_SOURCE_DIR/tests/fixtures/open-meteo
  run -0 json_eval '[sorted(d), d["current"]["time"]]' <"$fixtures/bogota.json"
  assert_output '[["current", "current_units", "elevation", "generationtime_ms", "latitude", "longitude", "timezone", "timezone_abbreviation", "utc_offset_seconds"], "2026-11-22T11:45"]'
  run -0 json_eval '[o["timezone_abbreviation"] for o in d]' <"$fixtures/colombia-5-cities.json"
  assert_output '["GMT-5", "GMT-5", "GMT-5", "GMT-5", "GMT-5"]'
}

# --- HTTP receiver ------------------------------------------------------------------

@test "receiver: stores exactly what was posted, as an object, an array, JSON Lines or chunked" {
  run -0 fetch -d '{"id":1,"city":"Bogotá","t":14.2}' "$RECEIVER_URL"
  assert_output $'{"accepted": 1}\n201'
  run -0 fetch -H 'Content-Type: application/json' -d '[{"id":2},{"id":3,"nested":{"a":[1,2]}}]' "$RECEIVER_URL"
  assert_output $'{"accepted": 2}\n201'
  run -0 fetch --data-binary $'{"id":4}\n\n{"id": 5, "x": null}\n' "$RECEIVER_BASE_URL/any/path"
  assert_output $'{"accepted": 2}\n201'
  run -0 fetch -H 'Transfer-Encoding: chunked' --data-binary $'{"id":6}\n{"id":7}\n' "$RECEIVER_URL"
  assert_output $'{"accepted": 2}\n201'
  run -0 fetch -d '[]' "$RECEIVER_URL"
  assert_output $'{"accepted": 0}\n201'

  run -0 cat "$RECEIVER_OUT"
  assert_output - <<'EOF'
{"id":1,"city":"Bogotá","t":14.2}
{"id":2}
{"id":3,"nested":{"a":[1,2]}}
{"id":4}
{"id":5,"x":null}
{"id":6}
{"id":7}
EOF
  run -0 http_fixture_stats receiver
  run -0 json_eval '[d["requests"], d["records"], d["accepted_requests"], d["by_path"]]' <<<"$output"
  assert_output '[5, 7, 4, {"/ingest": 4, "/any/path": 1}]'
}

@test "receiver: a bad body is 400 and stores nothing of its request" {
  run -0 fetch --data-binary $'{"id":1}\n{"id":' "$RECEIVER_URL"
  assert_line --index 0 --partial 'line 2'
  assert_line --index 1 400
  run -0 fetch -d '{"t":NaN}' "$RECEIVER_URL"
  assert_line --index 0 --partial 'NaN is not JSON'
  assert_line --index 1 400
  run -0 fetch -d '[{"id":1},2]' "$RECEIVER_URL"
  assert_line --index 0 --partial 'array element 1: a record must be a JSON object'
  run -0 fetch -d '' "$RECEIVER_URL"
  assert_output $'{"error": "empty body"}\n400'
  # Neither Content-Length nor chunked: an empty body, not a wait for the connection to close.
  run -0 fetch -X POST "$RECEIVER_URL"
  assert_output $'{"error": "empty body"}\n400'
  assert_file_empty "$RECEIVER_OUT"
  run -0 http_fixture_stats receiver
  run -0 json_eval '[d["requests"], d["records"], d["bad_requests"]]' <<<"$output"
  assert_output '[5, 0, 5]'
}

@test "receiver: fail-first=2 answers 503 twice, then stores; status=CODE; down-for=1 recovers; slow" {
  local i
  local -a outcomes=()
  for i in 1 2 3; do
    run -0 fetch -d "{\"try\":$i}" "$RECEIVER_URL?_mode=fail-first=2"
    outcomes+=("${lines[1]}")
  done
  [[ ${outcomes[*]} == '503 503 201' ]]

  run -0 fetch -H 'X-Fixture-Mode: status=500' -d '{"rejected":true}' "$RECEIVER_URL"
  assert_line --index 1 500
  run -0 fetch -d '{"accepted_with":202}' "$RECEIVER_BASE_URL/_mode/status=202/ingest"
  assert_line --index 1 202

  http_fixture_mode receiver down-for=1
  run -0 fetch -D - -d '{"while":"down"}' "$RECEIVER_URL"
  assert_line --regexp '^Retry-After: 1'
  assert_line --index 0 --regexp '^HTTP/1.1 503 '
  sleep 1.1
  run -0 fetch -d '{"after":"down"}' "$RECEIVER_URL"
  assert_line --index 1 201
  http_fixture_mode receiver ok

  local start=$EPOCHREALTIME ms
  run -0 fetch -d '{"slowly":true}' "$RECEIVER_URL?_mode=slow=0.5"
  assert_line --index 1 201
  ms=$(elapsed_ms "$start")
  ((ms >= 500 && ms < 4000))

  run -0 cat "$RECEIVER_OUT"
  assert_output $'{"try":3}\n{"accepted_with":202}\n{"after":"down"}\n{"slowly":true}'
}

@test "receiver: drop stores nothing and lose-ack stores without answering, so retries duplicate" {
  run -52 curl -sS --max-time 10 -d '{"id":"dropped"}' "$RECEIVER_URL?_mode=drop-first=1"
  run -52 curl -sS --max-time 10 -d '{"id":"acked-lost"}' "$RECEIVER_URL?_mode=lose-ack-first=1"
  # The at-least-once retry of the same record: now a duplicate the sink must cope with.
  run -0 fetch -d '{"id":"acked-lost"}' "$RECEIVER_URL?_mode=lose-ack-first=1"
  assert_line --index 1 201
  run -0 cat "$RECEIVER_OUT"
  assert_output $'{"id":"acked-lost"}\n{"id":"acked-lost"}'
  run -0 http_fixture_stats receiver
  run -0 json_eval '[d["requests"], d["records"], d["dropped_requests"], d["by_status"]]' <<<"$output"
  assert_output '[3, 2, 2, {"drop": 1, "lose-ack": 1, "201": 1}]'
}

@test "receiver: 20,000 records in batches of 500 and 2,000 one-record requests, none lost or doubled" {
  local dir=$BATS_TEST_TMPDIR
  # One curl, one kept-alive connection: 40 batches, then 2000 single records, each unique.
  "$ENVKIT_PYTHON" - "$dir" "$RECEIVER_URL" <<'EOF'
import json, sys
directory, url = sys.argv[1], sys.argv[2]
def transfer(data):
    return f'url = "{url}"\n{data}\noutput = "/dev/null"\nwrite-out = "%{{http_code}}\\n"\n'
groups = []
for b in range(40):
    records = [{"id": f"b{b}-{i}", "city": "Bogotá", "temperature_2m": 14.2, "relative_humidity_2m": 71} for i in range(500)]
    with open(f"{directory}/batch{b}.json", "w") as batch:
        json.dump(records, batch, ensure_ascii=False)
    groups.append(transfer(f'data-binary = "@{directory}/batch{b}.json"'))
with open(f"{directory}/batches.curl", "w") as config:
    config.write("next\n".join(groups))
groups = [transfer(f'data = "{{\\"id\\":\\"s{i}\\"}}"') for i in range(2000)]
with open(f"{directory}/singles.curl", "w") as config:
    config.write("next\n".join(groups))
EOF
  local start ms
  start=$EPOCHREALTIME
  curl -sS --max-time 60 --config "$dir/batches.curl" >"$dir/batches.codes"
  ms=$(elapsed_ms "$start")
  printf '# receiver: 20000 records in 40 requests: %d ms (%d records/s)\n' "$ms" $((20000000 / (ms + 1))) >&3
  start=$EPOCHREALTIME
  curl -sS --max-time 60 --config "$dir/singles.curl" >"$dir/singles.codes"
  local singles_ms
  singles_ms=$(elapsed_ms "$start")
  printf '# receiver: 2000 one-record requests: %d ms (%d requests/s)\n' "$singles_ms" $((2000000 / (singles_ms + 1))) >&3

  [[ $(grep -c '^201$' "$dir/batches.codes") == 40 ]]
  [[ $(grep -c '^201$' "$dir/singles.codes") == 2000 ]]
  run -0 "$ENVKIT_PYTHON" -c '
import json, sys
ids = [json.loads(line)["id"] for line in open(sys.argv[1])]
print(len(ids), len(set(ids)))' "$RECEIVER_OUT"
  assert_output '22000 22000'
  # Generous bounds (a loaded 2-core CI box): 20,000 records/s is the target, 5,000 the floor.
  ((ms < 4000 && singles_ms < 10000))
}

@test "receiver: stopped, it refuses connections; started again, same URL and its records kept" {
  start_http_receiver sink
  run -0 fetch -d '{"id":"before"}' "$SINK_URL"
  local url=$SINK_URL out=$SINK_OUT
  stop_http_fixture sink
  run -7 curl -sS --max-time 5 -d '{"id":"while-down"}' "$url"
  start_http_receiver sink
  [[ $SINK_URL == "$url" && $SINK_OUT == "$out" ]]
  run -0 fetch -d '{"id":"after"}' "$SINK_URL"
  run -0 cat "$SINK_OUT"
  assert_output $'{"id":"before"}\n{"id":"after"}'
  stop_http_fixture sink
}

# --- the helper ---------------------------------------------------------------------

@test "helper: stopping leaves no process and no listener behind" {
  start_openmeteo_server om_stop
  start_http_receiver rx_stop --out "$BATS_TEST_TMPDIR/rx.jsonl"
  [[ $RX_STOP_OUT == "$BATS_TEST_TMPDIR/rx.jsonl" ]]
  local pids="$OM_STOP_PID $RX_STOP_PID" ports="$OM_STOP_PORT $RX_STOP_PORT"
  stop_http_fixture om_stop
  stop_http_fixture rx_stop
  local pid port
  for pid in $pids; do
    run -1 _http_fixtures_group_alive "$pid"
  done
  for port in $ports; do
    run -7 curl -sS --max-time 5 "http://127.0.0.1:$port/_stats"
  done
}

@test "helper: a server that cannot start fails fast with its own error and the log tail" {
  run -1 start_openmeteo_server broken --mode 418
  assert_output --partial "start_openmeteo_server: error: openmeteo_server.py 'broken' exited during start-up"
  assert_output --partial "openmeteo_server: error: --mode: unknown mode '418'"
  run -1 start_http_receiver rx_bad --not-an-option
  assert_output --partial "http_receiver: error: unrecognized arguments: --not-an-option"
  run -1 start_http_receiver receiver
  assert_output --partial "'receiver' is already running"
  run -1 start_http_receiver recorded
  assert_output --partial "the name 'recorded' is already used by a fixture of kind openmeteo"
}
