#!/usr/bin/env bats
# queue-relay's spools: `spool check` and the quarantine of damaged segments (replay and check
# agree), and one dead sink among several not stopping the others.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_rabbitmq
  start_redis
}

teardown_file() {
  stop_all_servers
}

setup() {
  export ENVKIT_AMQP_PASSWORD=$RABBITMQ_PASSWORD
}

# N records {"id":"rK",...} on stdout.
records() {
  local n=$1 i
  for ((i = 0; i < n; i++)); do
    printf '{"id":"r%d","municipality":"m%d","temperature":%d.5}\n' "$i" $((i % 7)) $((i % 30))
  done
}

# Flips one bit of the byte at OFFSET of FILE.
flip_byte() {
  python3 -c 'import sys
p, o = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x10]))' "$1" "$2"
}

# A spool of 50 records for a Redis sink that is down: $spool, $sink, $FLAKY_PORT.
spool_fifty() {
  spool=$BATS_TEST_TMPDIR/spool
  start_redis flaky
  sink="redis://127.0.0.1:$FLAKY_PORT/0?key=kept:{id}"
  stop_redis flaky
  run --separate-stderr queue-relay --from - --to "$sink" --spool "$spool" --connect-timeout 1s < <(records 50)
  [ "$status" -eq 75 ]
  segment=$(echo "$spool"/*/*.spool)
  [ -f "$segment" ]
}

@test "spool check: what each sink's spool would replay, and a second check while a run holds it is 75" {
  spool_fifty
  run --separate-stderr queue-relay spool check "$spool"
  assert_success
  [ "${#lines[@]}" -eq 1 ]
  [ "$(jq -r .sink <<<"$output")" = "redis://127.0.0.1:$FLAKY_PORT/0?key=kept:%7Bid%7D" ]
  [ "$(jq -r '[.records, .segments, .oldest, (.quarantine | length)] | join(" ")' <<<"$output")" = "50 1 r0 0" ]
  (($(jq .bytes <<<"$output") > 50 * 60))
  [[ $(jq -r .oldest_spooled_by <<<"$output") == 20*Z ]]
  # The same directory named as the spool itself, not its parent.
  run --separate-stderr queue-relay spool check "$(dirname "$segment")"
  assert_success
  [ "$(jq .records <<<"$output")" -eq 50 ]
  run --separate-stderr queue-relay spool check "$BATS_TEST_TMPDIR/nowhere"
  [ "$status" -eq 66 ]
  run --separate-stderr queue-relay spool
  [ "$status" -eq 64 ]
  # A run holds the spool's lock: check says so instead of reading under it.
  mkfifo "$BATS_TEST_TMPDIR/in"
  queue-relay --from - --to "$sink" --spool "$spool" --connect-timeout 1s <"$BATS_TEST_TMPDIR/in" 2>/dev/null &
  pid=$!
  exec 4>"$BATS_TEST_TMPDIR/in"
  # Held once the relay has the lock file open (checking by taking it could beat the relay to it).
  deadline=$((SECONDS + 30))
  until ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "$spool/.*/lock"; do ((SECONDS < deadline)); sleep 0.1; done
  run --separate-stderr queue-relay spool check "$spool"
  [ "$status" -eq 75 ]
  [[ $stderr == *"is in use"* ]]
  exec 4>&-
  wait "$pid" || true
}

@test "a flipped byte: the run that replays quarantines the record (65, path on stderr), delivers the other 49, and check agrees" {
  spool_fifty
  size=$(stat -c %s "$segment")
  flip_byte "$segment" $((size / 2))
  start_redis flaky
  run --separate-stderr queue-relay --from - --to "$sink" --spool "$spool" --stats < <(echo '{"id":"new"}')
  [ "$status" -eq 65 ]
  quarantined=$(echo "$spool"/*/quarantine/*.damaged)
  [ -f "$quarantined" ]
  [[ $stderr == *"error: $segment: damage at offset "* ]]
  [[ $stderr == *"moved to $quarantined"* ]]
  [[ $stderr == *"whole records after it spooled again"* ]]
  [[ $stderr == *'"replayed":49'* ]]
  run redis-cli -p "$FLAKY_PORT" --scan --pattern 'kept:*'
  [ "${#lines[@]}" -eq 50 ]  # 49 replayed and the new one
  # Check reports the quarantine from before, and says so until an operator clears it.
  run --separate-stderr queue-relay spool check "$spool"
  [ "$status" -eq 65 ]
  [ "$(jq -r '[.records, (.quarantine | join(","))] | join(" ")' <<<"$output")" = "0 $quarantined" ]
  [[ $stderr == *"quarantine holds damaged records"* ]]
  rm "$quarantined"
  run --separate-stderr queue-relay spool check "$spool"
  assert_success
  stop_redis flaky
}

@test "damage found by spool check is quarantined the same way: check says 65 and the replay then delivers the rest" {
  spool_fifty
  size=$(stat -c %s "$segment")
  flip_byte "$segment" $((size / 3))
  run --separate-stderr queue-relay spool check "$spool"
  [ "$status" -eq 65 ]
  [ "$(jq .records <<<"$output")" -eq 49 ]
  quarantined=$(jq -r '.quarantine[0]' <<<"$output")
  [[ $quarantined == *.damaged && -f $quarantined ]]
  [[ $stderr == *"moved to $quarantined"* ]]
  # Appending garbage is damage too.
  head -c 333 /dev/urandom >>"$segment"
  run --separate-stderr queue-relay spool check "$spool"
  [ "$status" -eq 65 ]
  [ "$(jq '.quarantine | length' <<<"$output")" -eq 2 ]
  [ "$(jq .records <<<"$output")" -eq 49 ]
  start_redis flaky
  run --separate-stderr queue-relay --from - --to "$sink" --spool "$spool" --stats < <(echo '{"id":"new"}')
  assert_success  # nothing new was quarantined by this run
  [[ $stderr == *'"replayed":49'* ]]
  stop_redis flaky
}

@test "a torn tail (a write cut short) is quarantined with a warning and is not damage: check exits 0" {
  spool_fifty
  truncate -s -7 "$segment"
  run --separate-stderr queue-relay spool check "$spool"
  assert_success
  [ "$(jq .records <<<"$output")" -eq 49 ]
  [[ $(jq -r '.quarantine[0]' <<<"$output") == *.torn ]]
  [[ $stderr == *"warning: $segment: an interrupted write at offset "* ]]
}

# Runs COMMAND until it succeeds, for at most 60 s; on timeout shows the relay's stderr and metrics.
wait_for() {
  local deadline=$((SECONDS + 60))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "timed out waiting for: $*" >&2
      cat "$BATS_TEST_TMPDIR/err" "$BATS_TEST_TMPDIR/metrics.prom" >&2 2>/dev/null
      return 1
    fi
    sleep 0.1
  done
}

queue_depth() { rabbitmqctl_for rabbitmq list_queues -q name messages | awk -v q="$1" '$1 == q {print $2}'; }
keys() { redis-cli -p "$1" --scan --pattern "$2" | wc -l; }
# The spool backlog the relay's --metrics-file reports for the sink on PORT.
spool_pending() { awk -v p=":$2/" '/_spool_pending_records{/ && index($0, p) {print $2}' "$1" 2>/dev/null; }
@test "two sinks, one dead, with a spool: the live one gets every record, the dead one's are spooled and acked, replayed once it is back, with no new traffic" {
  q=two$BATS_TEST_NUMBER n=2000
  records "$n" | queue-relay --from - --to "$RABBITMQ_URL?queue=$q"
  start_redis flaky
  stop_redis flaky
  live="redis://127.0.0.1:$REDIS_PORT/0?key=live$BATS_TEST_NUMBER:{id}"
  dead="redis://127.0.0.1:$FLAKY_PORT/0?key=back:{id}"
  metrics=$BATS_TEST_TMPDIR/metrics.prom
  queue-relay --from "$RABBITMQ_URL?queue=$q&prefetch=500" --to "$dead" --to "$live" --spool "$BATS_TEST_TMPDIR/spool" \
    --connect-timeout 1s --metrics-file "$metrics" --stats 2>"$BATS_TEST_TMPDIR/err" &
  pid=$!
  # The dead sink is first in line, and still the live one receives everything...
  wait_for eval '(($(keys "$REDIS_PORT" "live$BATS_TEST_NUMBER:*") == n))'
  # ...while the dead one's records are in its own spool, and so the broker has been acked.
  wait_for eval '[[ $(spool_pending "$metrics" "$FLAKY_PORT") == "$n" ]]'
  wait_for eval '(($(queue_depth "$q") == 0))'
  kill -0 "$pid"
  # Back: the spool is replayed though nothing new arrives (the queue stays empty).
  start_redis flaky
  wait_for eval '(($(keys "$FLAKY_PORT" "back:r*") == n))'
  kill -TERM "$pid"
  wait "$pid" || { cat "$BATS_TEST_TMPDIR/err" >&2; false; }
  grep -q "\"replayed\":$n," "$BATS_TEST_TMPDIR/err"
  (($(keys "$FLAKY_PORT" "back:*") == $(keys "$REDIS_PORT" "live$BATS_TEST_NUMBER:*")))
  [ "$(spool_pending "$metrics" "$FLAKY_PORT")" -eq 0 ]
  [ "$(queue_depth "$q")" -eq 0 ]
  stop_redis flaky
}

@test "two sinks, one dead, no spool: nothing is acked until the dead one has it (the broker keeps all), then all are" {
  q=nospool$BATS_TEST_NUMBER n=1000
  records "$n" | queue-relay --from - --to "$RABBITMQ_URL?queue=$q"
  start_redis flaky
  stop_redis flaky
  live="redis://127.0.0.1:$REDIS_PORT/0?key=ns$BATS_TEST_NUMBER:{id}"
  dead="redis://127.0.0.1:$FLAKY_PORT/0?key=ns:{id}"
  queue-relay --from "$RABBITMQ_URL?queue=$q&prefetch=500" --to "$dead" --to "$live" \
    --connect-timeout 1s --exit-when-idle 5s 2>"$BATS_TEST_TMPDIR/err" &
  pid=$!
  # The live one gets what the broker hands out (a prefetch window, handed out again and
  # again: without a spool the dead sink holds the source back), and not one is acked.
  wait_for eval '(($(grep -c "no --spool to keep them" "$BATS_TEST_TMPDIR/err") >= 4))'
  (($(keys "$REDIS_PORT" "ns$BATS_TEST_NUMBER:*") > 0))
  [ "$(queue_depth "$q")" -eq "$n" ]
  start_redis flaky
  wait_for eval '(($(keys "$FLAKY_PORT" "ns:*") == n))'
  wait "$pid" || { cat "$BATS_TEST_TMPDIR/err" >&2; false; }
  [ "$(keys "$REDIS_PORT" "ns$BATS_TEST_NUMBER:*")" -eq "$n" ]
  [ "$(queue_depth "$q")" -eq 0 ]
  stop_redis flaky
}
