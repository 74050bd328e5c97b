#!/usr/bin/env bats
# The AMQP and Kafka connectors' and sources' Live* unit tests against RabbitMQ and the Kafka mock, cross-checked with amqp-get and kcat.
# shellcheck disable=SC2154 # stderr comes from `run --separate-stderr`

bats_require_minimum_version 1.5.0

load ../lib/test_helper

setup_file() {
  servers_init
  # RabbitMQ's Erlang boot is most of the wait: let it run while the Kafka mock starts.
  start_rabbitmq >"$BATS_FILE_TMPDIR/rabbitmq.start" 2>&1 3>&- &
  local rabbit_job=$!
  # envkit-live is shared by every run of LiveKafka.*; each bats readback test has its own;
  # envkit-src and envkit-src-parts by the LiveSourceKafka tests (envkit-src has one
  # partition, so offsets follow production; envkit-src-parts three, for a rebalance).
  start_kafka_mock kafka 3 envkit-live:4 envkit-readback:1 envkit-kcat-readback:1 envkit-src:1 \
    envkit-src-parts:3
  if ! wait "$rabbit_job"; then
    cat "$BATS_FILE_TMPDIR/rabbitmq.start" >&2
    return 1
  fi
  start_rabbitmq
}

teardown_file() {
  stop_all_servers
}

# The command the LiveAmqp test runs to make the broker close every connection mid-batch:
# rabbitmqctl_for is a shell function, so it gets a script of its own.
close_connections_script() {
  local script=$BATS_TEST_TMPDIR/close-connections
  cat >"$script" <<EOF
#!/usr/bin/env bash
source "$ENVKIT_SOURCE_DIR/tests/lib/servers.bash"
rabbitmqctl_for -q --timeout 60 close_all_connections 'envkit test: connection closed on purpose'
EOF
  chmod +x "$script"
  printf '%s\n' "$script"
}

# Runs the unit-test binary on FILTER with the brokers of this file (or the given ones).
run_live() {
  local filter=$1 amqp_url=${2:-$RABBITMQ_URL} kafka_bootstrap=${3:-$KAFKA_BOOTSTRAP}
  run env ENVKIT_TEST_AMQP_URL="$amqp_url" ENVKIT_AMQP_PASSWORD="$RABBITMQ_PASSWORD" \
    ENVKIT_TEST_AMQP_CLOSE_CMD="$(close_connections_script)" \
    ENVKIT_TEST_KAFKA_BOOTSTRAP="$kafka_bootstrap" \
    ENVKIT_TEST_AMQP_READBACK_QUEUE="${READBACK_QUEUE:-envkit-readback}" \
    ENVKIT_TEST_KAFKA_READBACK_TOPIC="${READBACK_TOPIC:-envkit-readback}" \
    timeout 600 "$ENVKIT_BUILD_DIR/bin/envkit_unit_tests" --gtest_filter="$filter" --gtest_color=no
}

# The throughput and failure-injection lines the live tests print, on the TAP stream.
show_info() {
  grep -E '^\[ (perf|info) ' <<<"$output" | sed 's/^/# /' >&3 || true
}

@test "AMQP and Kafka connectors: every live test passes against RabbitMQ and the Kafka mock" {
  run_live 'LiveAmqp*:LiveKafka*'
  show_info
  assert_all_passed 17
  # The failure injections really happened: the mid-batch cut and the broker's own close.
  assert_output --regexp '\[ info     \] cut mid-batch: [1-9][0-9]* durable, [1-9][0-9]* retry'
  assert_output --regexp 'close_all_connections: [0-9]+ sent, [0-9]+ durable, [1-9][0-9]* retry'
}

@test "AMQP and Kafka sources: consume, ack, crash, retry, out-of-order acks and a rebalance against the brokers" {
  run_live 'LiveSourceAmqp*:LiveSourceKafka*'
  show_info
  assert_all_passed 15
}

@test "messages the AMQP sink published are read back by amqp-get, in order, body and all" {
  local queue=envkit-amqp-get-$$ url
  READBACK_QUEUE=$queue run_live 'LiveAmqp.ReadbackQueueForTheRealClients'
  assert_all_passed 1
  run -0 rabbitmqctl_for -q --timeout 60 list_queues name messages durable
  assert_output --regexp "$queue[[:space:]]+3[[:space:]]+true"

  url="amqp://$RABBITMQ_USER:$RABBITMQ_PASSWORD@127.0.0.1:$RABBITMQ_PORT/%2f"
  # Not `i`: bats-core's `run` assigns a global i (common.bash), which clobbers the loop.
  local n
  for n in 0 1 2; do
    run -0 timeout 20 amqp-get -u "$url" -q "$queue"
    assert_output "{\"city\":\"Bogotá\",\"n\":$n}"
  done
  # Three published, three read: nothing more is there.
  run ! timeout 20 amqp-get -u "$url" -q "$queue"
}

@test "messages the Kafka sink produced are read back by kcat, keyed by record id" {
  READBACK_TOPIC=envkit-kcat-readback run_live 'LiveKafka.ReadbackTopicForTheRealClients'
  assert_all_passed 1
  run -0 --separate-stderr timeout 30 kcat -b "$KAFKA_BOOTSTRAP" -C -t envkit-kcat-readback \
    -o beginning -e -q -f '%k %s\n'
  assert_equal "${#lines[@]}" 3
  assert_line --index 0 'readback-0 {"city":"Bogotá","n":0}'
  assert_line --index 1 'readback-1 {"city":"Bogotá","n":1}'
  assert_line --index 2 'readback-2 {"city":"Bogotá","n":2}'
}

@test "kcat sees every one of the 10,000 records the Kafka sink called durable" {
  # LiveKafka.TenThousand... reads back with envkit's own consumer; kcat is the outside
  # witness. envkit-live holds earlier runs' records too, so count this run's key prefix.
  run_live 'LiveKafka.TenThousandRecordsAreDurableAndAllReadBack'
  show_info
  assert_all_passed 1
  local prefix
  prefix=$(grep -oE 'key prefix of this run: live-[0-9]+-[0-9]+' <<<"$output")
  prefix=${prefix##* }
  [[ -n $prefix ]] || fail "the live test named no key prefix"
  run -0 --separate-stderr timeout 60 kcat -b "$KAFKA_BOOTSTRAP" -C -t envkit-live -o beginning \
    -e -q -f '%k\n'
  assert_equal "$(grep -c "^$prefix-" <<<"$output")" 10000
  assert_equal "$(grep "^$prefix-" <<<"$output" | sort -u | wc -l)" 10000
}

@test "the live tests fail, not skip, when the brokers are not there" {
  # Port 1 on loopback: nothing listens there.
  run_live 'LiveAmqp.TenThousand*:LiveKafka.TenThousand*:LiveSourceAmqp.ConsumeAndAck*:LiveSourceKafka.Acked*' \
    'amqp://envkit@127.0.0.1:1/%2f' '127.0.0.1:1'
  assert_failure
  refute_output --partial '[  SKIPPED ]'
  assert_output --partial '[  FAILED  ] LiveAmqp.TenThousandRecordsAreConfirmedAndAllInTheQueue'
  assert_output --partial '[  FAILED  ] LiveKafka.TenThousandRecordsAreDurableAndAllReadBack'
  assert_output --partial '[  FAILED  ] LiveSourceAmqp.ConsumeAndAckEmptiesTheQueue'
  assert_output --partial '[  FAILED  ] LiveSourceKafka.AckedRecordsAreCommittedAndAFreshMemberStartsThere'
  assert_output --partial 'connection refused'
  refute_output --partial "$RABBITMQ_PASSWORD"
}
