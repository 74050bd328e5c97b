#!/usr/bin/env bats
# race-probe end to end on loopback: its reference target (safe and racy), the tasks and
# stock workloads, two clients and reconcile, unknown outcomes after commit.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

teardown() {
  # Only the servers this test started, by their pids.
  local pid
  for pid in "${serve_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# Starts `race-probe serve` on a free port with the given options; waits (bounded) until it
# answers. Sets $base to http://127.0.0.1:PORT.
start_serve() {
  local port
  port=$(free_port)
  race-probe serve --listen "http://127.0.0.1:$port" "$@" 2>>"$BATS_TEST_TMPDIR/serve.err" &
  serve_pids+=($!)
  base=http://127.0.0.1:$port
  local deadline=$((SECONDS + 20))
  until curl -s -o /dev/null "$base/health"; do
    ((SECONDS < deadline)) || { cat "$BATS_TEST_TMPDIR/serve.err" >&2; return 1; }
    kill -0 "${serve_pids[-1]}" || { cat "$BATS_TEST_TMPDIR/serve.err" >&2; return 1; }
    sleep 0.1
  done
}

@test "--help for each mode goes to stdout; usage errors exit 64 with one Try line" {
  run --separate-stderr race-probe --help
  assert_success
  assert_output --partial "Usage: race-probe --target URL"
  assert_output --partial "race-probe reconcile"
  run --separate-stderr race-probe serve --help
  assert_success
  assert_output --partial "--race-window"
  run --separate-stderr race-probe reconcile --help
  assert_success
  assert_output --partial "HISTORY..."
  run -64 --separate-stderr race-probe --workers 2
  [[ $stderr == *"race-probe: error: no target: give --target URL"* ]]
  [[ $stderr == *"Try 'race-probe --help'"* ]]
  run -64 --separate-stderr race-probe --target http://127.0.0.1:1/x --workload bank
  run -64 --separate-stderr race-probe serve --race-window 5ms
  [[ $stderr == *"give --unsafe too"* ]]
  run -64 --separate-stderr race-probe serve --fail-after-commit 2
  run -64 --separate-stderr race-probe reconcile
}

@test "--check-config: resolves, listens on and connects to nothing; a missing data or history directory is 66" {
  run -0 --separate-stderr race-probe serve --check-config --data "$BATS_TEST_TMPDIR/tasks.json"
  assert_output ""
  run -66 --separate-stderr race-probe serve --check-config --data "$BATS_TEST_TMPDIR/nowhere/tasks.json"
  run -0 --separate-stderr race-probe --check-config --target "http://127.0.0.1:$(free_port)/tasks"
  assert_output ""
  # A history not written yet is fine where its directory exists (its clients may not have
  # run); a directory that does not exist is 66, at --check-config and at a real run.
  run -0 --separate-stderr race-probe reconcile --check-config "$BATS_TEST_TMPDIR/missing.jsonl"
  run -66 --separate-stderr race-probe reconcile --check-config "$BATS_TEST_TMPDIR/nowhere/a.jsonl"
  [[ $stderr == *"cannot reach the history's directory"* ]]
  run -66 --separate-stderr race-probe reconcile "$BATS_TEST_TMPDIR/missing.jsonl"
  [[ $stderr == *"cannot read the history"* ]]
}

@test "a target nobody listens on: the probe could not run, 69, no verdict" {
  run -69 --separate-stderr race-probe --target "http://127.0.0.1:$(free_port)/tasks" --format json
  assert_output ""
  [[ $stderr == *"race-probe: error:"* ]]
}

@test "safe serve, two clients x 100 tasks at once: 200 stored, none lost or duplicated; reconcile agrees" {
  data=$BATS_TEST_TMPDIR/tasks.json
  start_serve --data "$data"
  for c in a b; do
    race-probe --target "$base/tasks" --client-id "$c" --workers 1 --requests 100 --format json \
      --history "$BATS_TEST_TMPDIR/$c.jsonl" > "$BATS_TEST_TMPDIR/$c.out" 2>>"$BATS_TEST_TMPDIR/probe.err" &
    pids+=($!)
  done
  wait "${pids[0]}"
  wait "${pids[1]}"
  for c in a b; do
    jq -e '.valid and .operations.ok == 100 and .stored == 100 and .lost == 0 and .duplicated == 0' "$BATS_TEST_TMPDIR/$c.out"
  done
  # The file itself: a JSON array of 200 distinct ids.
  [ "$(jq length "$data")" -eq 200 ]
  [ "$(jq -r '.[].id' "$data" | sort -u | wc -l)" -eq 200 ]
  [ "$(wc -l < "$BATS_TEST_TMPDIR/a.jsonl")" -eq 101 ]  # 100 operations and a read-back
  run -0 --separate-stderr race-probe reconcile --format json --read-back "$base/tasks" \
    "$BATS_TEST_TMPDIR/a.jsonl" "$BATS_TEST_TMPDIR/b.jsonl"
  echo "$output" | jq -e '.valid and .operations.ok == 200 and .stored == 200 and .lost == 0 and .duplicated == 0 and .foreign == 0'
  # The tasks file read as a file gives the same verdict.
  run -0 --separate-stderr race-probe reconcile --format json --read-back "file:$data" \
    "$BATS_TEST_TMPDIR/a.jsonl" "$BATS_TEST_TMPDIR/b.jsonl"
  echo "$output" | jq -e '.stored == 200'
}

# Sized so the race cannot be missed: 2 clients x 4 workers always have writes in flight
# together, and each holds its read for 20 ms before writing, so overlapping writes lose.
@test "unsafe serve: lost tasks found in every run, exit 1, by each client and by reconcile" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json" --unsafe --race-window 20ms
  for c in a b; do
    race-probe --target "$base/tasks" --client-id "$c" --workers 4 --requests 10 --format json \
      --history "$BATS_TEST_TMPDIR/$c.jsonl" > "$BATS_TEST_TMPDIR/$c.out" 2>>"$BATS_TEST_TMPDIR/probe.err" &
    pids+=($!)
  done
  status_a=0 status_b=0
  wait "${pids[0]}" || status_a=$?
  wait "${pids[1]}" || status_b=$?
  [ "$status_a" -eq 1 ] && [ "$status_b" -eq 1 ]
  jq -e '(.valid | not) and .operations.ok == 40 and .lost > 0 and (.examples.lost | length) > 0' "$BATS_TEST_TMPDIR/a.out"
  run -1 --separate-stderr race-probe reconcile --format json --read-back "$base/tasks" \
    "$BATS_TEST_TMPDIR/a.jsonl" "$BATS_TEST_TMPDIR/b.jsonl"
  lost=$(echo "$output" | jq '.lost')
  stored=$(echo "$output" | jq '.stored')
  ((lost > 0 && lost + stored == 80))
  # The human report names the loss too.
  run -1 --separate-stderr race-probe reconcile --format human --read-back "$base/tasks" "$BATS_TEST_TMPDIR/a.jsonl"
  assert_output --partial "verdict: VIOLATION"
  assert_output --partial "first lost: a-"
}

@test "--fail-after-commit: unknown outcomes are not counted lost, and the stored ones are recovered" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json" --fail-after-commit 0.3
  run -0 --separate-stderr race-probe --target "$base/tasks" --client-id f --workers 2 --requests 30 --format json
  echo "$output" | jq -e '.valid and .lost == 0 and .operations.unknown > 0'
  # Every unknown write did commit here: each is found, and reported as recovered.
  echo "$output" | jq -e '.recovered == .operations.unknown and .stored == .operations.ok and .unknown_absent == 0'
}

@test "--fail-after-commit with a stall past the client's timeout: timed-out writes are unknown, not lost" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json" --fail-after-commit 0.3 --fail-stall 2s
  run -0 --separate-stderr race-probe --target "$base/tasks" --client-id t --workers 4 --requests 10 \
    --request-timeout 300ms --format json
  echo "$output" | jq -e '.valid and .lost == 0 and .operations.unknown > 0 and .recovered == .operations.unknown'
}

@test "register, safe serve: every key linearizable; unsafe serve's stale reads are found, with a window, exit 1" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json"
  run -0 --separate-stderr race-probe --target "$base/kv" --workload register --keys 2 --workers 4 \
    --requests 100 --format json --history "$BATS_TEST_TMPDIR/safe.jsonl"
  echo "$output" | jq -e '.valid and .operations.ok > 300 and ([.keys[] | .linearizable == "yes"] | all)'
  echo "$output" | jq -e '[.keys[] | .operations] | add == 400'
  # reconcile of the history gives the same verdict.
  run -0 --separate-stderr race-probe reconcile --format json "$BATS_TEST_TMPDIR/safe.jsonl"
  echo "$output" | jq -e '.valid and ([.keys[] | .linearizable == "yes"] | all)'
  # The same workload against the stale read cache of --unsafe (50 ms old at least): reads
  # see values overwritten since, in every run.
  start_serve --data "$BATS_TEST_TMPDIR/racy.json" --unsafe --race-window 5ms
  run -1 --separate-stderr race-probe --target "$base/kv" --workload register --keys 2 --workers 4 \
    --requests 100 --format json
  echo "$output" | jq -e '(.valid | not) and ([.keys[] | select(.linearizable == "no")] | length) > 0'
  echo "$output" | jq -e '[.keys[] | select(.linearizable == "no") | .window | length > 1] | all'
  run -1 --separate-stderr race-probe --target "$base/kv" --workload register --keys 2 --workers 4 \
    --requests 100 --format human
  assert_output --partial "not linearizable"
  assert_output --partial "smallest failing window found:"
  assert_output --partial "verdict: VIOLATION"
}

@test "register, writes answered 504 after they committed: unknown, still linearizable; --export jepsen is a history Jepsen's checkers accept" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json" --fail-after-commit 0.2
  for c in a b; do
    race-probe --target "$base/kv" --workload register --client-id "$c" --keys 2 --workers 2 --requests 60 \
      --format json --history "$BATS_TEST_TMPDIR/$c.jsonl" >"$BATS_TEST_TMPDIR/$c.out" 2>>"$BATS_TEST_TMPDIR/probe.err" &
    pids+=($!)
  done
  # Each probe checks its own history alone, where a value the other client wrote seems to
  # come from nowhere: its own verdict may go either way (exit 0 or 1), by how the two runs
  # interleave. The verdict that counts is reconcile's, on both histories.
  for pid in "${pids[@]}"; do
    st=0
    wait "$pid" || st=$?
    ((st == 0 || st == 1))
  done
  run -0 --separate-stderr race-probe reconcile --format json "$BATS_TEST_TMPDIR/a.jsonl" "$BATS_TEST_TMPDIR/b.jsonl"
  echo "$output" | jq -e '.valid and .operations.unknown > 0 and ([.keys[] | .linearizable == "yes"] | all)'
  unknown=$(echo "$output" | jq '.operations.unknown')
  # The merged history in EDN, read by an EDN reader that is not ours (edn-data, from npm)
  # and checked for what Jepsen requires of a history.
  race-probe reconcile --export jepsen "$BATS_TEST_TMPDIR/a.jsonl" "$BATS_TEST_TMPDIR/b.jsonl" >"$BATS_TEST_TMPDIR/h.edn"
  run -0 node "$ENVKIT_SOURCE_DIR/tests/lib/jepsen_history.js" "$BATS_TEST_TMPDIR/h.edn"
  echo "$output" | jq -e --argjson u "$unknown" '.invoke == 240 and .events == 480 and .info == $u'
  echo "$output" | jq -e '.f.read + .f.write + .f.cas == 240 and .processes >= 4'
  run -0 grep -c -F ':type :info' "$BATS_TEST_TMPDIR/h.edn"
  [ "$output" -eq "$unknown" ]
  # The checker of the export refuses a history with a line dropped, or out of time order.
  sed '7d' "$BATS_TEST_TMPDIR/h.edn" >"$BATS_TEST_TMPDIR/bad.edn"
  run -1 node "$ENVKIT_SOURCE_DIR/tests/lib/jepsen_history.js" "$BATS_TEST_TMPDIR/bad.edn"
  assert_output --partial ':index 7, expected 6'
  # A tasks history exports as :add and a read of the set.
  start_serve --data "$BATS_TEST_TMPDIR/t.json"
  race-probe --target "$base/tasks" --client-id t --workers 2 --requests 10 --format json \
    --history "$BATS_TEST_TMPDIR/t.jsonl" >/dev/null
  race-probe reconcile --export jepsen "$BATS_TEST_TMPDIR/t.jsonl" >"$BATS_TEST_TMPDIR/t.edn"
  run -0 node "$ENVKIT_SOURCE_DIR/tests/lib/jepsen_history.js" "$BATS_TEST_TMPDIR/t.edn"
  echo "$output" | jq -e '.f.add == 20 and .f.read == 1 and .ok == 21'
  run -0 tail -n 1 "$BATS_TEST_TMPDIR/t.edn"
  assert_output --regexp '^\{:type :ok, :f :read, :value #\{("t-[0-9]+" ?){20}\}'
  run -64 --separate-stderr race-probe reconcile --export edn "$BATS_TEST_TMPDIR/t.jsonl"
  [[ $stderr == *"--export: 'edn' is not jepsen"* ]]
}

@test "stock, safe serve: 80 purchases of 50 in stock sell exactly 50, none oversold" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json"
  run -0 --separate-stderr race-probe --target "$base/stock" --workload stock --stock 50 --workers 8 --requests 10 --format json
  echo "$output" | jq -e '.valid and .operations.ok == 50 and .operations.fail == 30 and .items.item0.remaining == 0 and .items.item0.oversold == 0'
}

@test "stock, unsafe serve: lost decrements found as phantom purchases with the requests to blame, exit 1" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json" --unsafe --race-window 20ms
  run -1 --separate-stderr race-probe --target "$base/stock" --workload stock --stock 20 --workers 8 --requests 10 \
    --format json --history "$BATS_TEST_TMPDIR/h.jsonl"
  echo "$output" | jq -e '(.valid | not) and .items.item0.phantom > 0 and (.items.item0.suspects | length) > 0'
  # More acknowledged purchases than stock: oversold.
  echo "$output" | jq -e '.items.item0.oversold > 0'
  run -1 --separate-stderr race-probe reconcile --format json "$BATS_TEST_TMPDIR/h.jsonl"
  echo "$output" | jq -e '.items.item0.phantom > 0'
}

@test "serve stops on SIGTERM with status 0; the tasks file stays whole" {
  data=$BATS_TEST_TMPDIR/tasks.json
  start_serve --data "$data"
  race-probe --target "$base/tasks" --client-id s --workers 2 --requests 20 --format json > /dev/null
  kill -TERM "${serve_pids[0]}"
  code=0
  wait "${serve_pids[0]}" || code=$?
  serve_pids=()
  [ "$code" -eq 0 ]
  [ "$(jq length "$data")" -eq 40 ]
}

@test "a probe stopped by SIGTERM sends nothing more, reports and records what it sent, exits 75" {
  data=$BATS_TEST_TMPDIR/tasks.json
  start_serve --data "$data"
  race-probe --target "$base/tasks" --client-id t --workers 4 --requests 2500 --rate 200 --format json \
    --history "$BATS_TEST_TMPDIR/h.jsonl" >"$BATS_TEST_TMPDIR/out.json" 2>"$BATS_TEST_TMPDIR/err" &
  local pid=$! n=0 deadline=$((SECONDS + 30)) status=0 i sent
  until ((n >= 40)); do
    ((SECONDS < deadline)) || fail "fewer than 40 tasks stored in 30 s"
    sleep 0.05
    n=$(curl -s "$base/tasks" | jq length)
  done
  kill -TERM "$pid"
  for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$pid" 2>/dev/null && fail "still running 10 s after SIGTERM"
  wait "$pid" || status=$?
  [ "$status" -eq 75 ] || fail "exit $status: $(cat "$BATS_TEST_TMPDIR/err")"
  grep -q "stopped by a signal" "$BATS_TEST_TMPDIR/err"
  # What was sent was answered and stored; the 10,000 asked for were not all sent.
  sent=$(jq '.operations.ok' "$BATS_TEST_TMPDIR/out.json")
  ((sent >= 40 && sent < 10000)) || fail "ok operations: $sent"
  jq -e --argjson n "$sent" '.stored == $n and .lost == 0 and .duplicated == 0' "$BATS_TEST_TMPDIR/out.json"
  [ "$(jq length "$data")" -eq "$sent" ]
  [ "$(grep -c '"type":"op"' "$BATS_TEST_TMPDIR/h.jsonl")" -eq "$sent" ]
}

@test "--rate: open loop near the asked rate, corrected and uncorrected latency both reported" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json"
  # The stock endpoint answers from memory: the server is never what limits the rate here.
  run -0 --separate-stderr race-probe --target "$base/stock" --workload stock --stock 1000 --client-id r \
    --workers 4 --requests 50 --rate 200 --format json
  echo "$output" | jq -e '.latency_us.corrected.count == 200 and .latency_us.uncorrected.count == 200'
  # Closed load on loopback runs far faster than 200/s: this is the schedule holding it back.
  echo "$output" | jq -e '.latency_us.achieved_rate > 100 and .latency_us.achieved_rate < 240'
  echo "$output" | jq -e '.latency_us.corrected | has("p50") and has("p90") and has("p99") and has("p99.9") and has("max")'
}

# One worker asked for 50/s against a server that holds every reply 200 ms: the requests
# queue behind each other. Latency from the intended send time grows with the queue; latency
# from the actual send stays near 200 ms (the coordinated omission wrk2 corrects).
@test "--rate against a stalling server: corrected latency shows the queue the uncorrected one hides" {
  start_serve --data "$BATS_TEST_TMPDIR/tasks.json" --fail-after-commit 1 --fail-stall 200ms
  run -0 --separate-stderr race-probe --target "$base/tasks" --client-id s --workers 1 --requests 15 --rate 50 --format json
  echo "$output" | jq -e '.latency_us.corrected.p99 > 2 * .latency_us.uncorrected.p99'
  echo "$output" | jq -e '.latency_us.uncorrected.p50 >= 200000 and .latency_us.corrected.max >= 2000000'
}
