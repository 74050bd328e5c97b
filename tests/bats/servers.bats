#!/usr/bin/env bats
# Proves the real-server test harness (tests/lib/servers.bash): every server answers its own client.
# shellcheck disable=SC2154 # stderr and stderr_lines come from `run --separate-stderr`

bats_require_minimum_version 1.5.0

load ../lib/test_helper

# Seconds since START (an $EPOCHREALTIME), to two decimals.
elapsed_since() {
  local us=$((${EPOCHREALTIME/./} - ${1/./}))
  printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}

# Prints how long a start took on the TAP stream, so cold/warm start costs are visible.
timed() {
  local start=$EPOCHREALTIME
  "$@" || return
  printf '# %s: %s s\n' "$*" "$(elapsed_since "$start")" >&3
}

# pgrep that ignores zombies: PID 1 here reaps orphans only every few seconds.
pgrep_live() {
  pgrep --runstates R,S,D,T,t "$@"
}

setup_file() {
  servers_init
  # RabbitMQ's Erlang boot is most of the time: let it run while the others start. The
  # second start_rabbitmq finds it running and only exports its variables.
  local rabbit_start=$EPOCHREALTIME
  start_rabbitmq >"$BATS_FILE_TMPDIR/rabbitmq.start" 2>&1 3>&- &
  local rabbit_job=$!

  local status=0
  timed start_mariadb &&
    timed start_nginx_stream "$MARIADB_HOST:$MARIADB_PORT" &&
    timed start_nginx_stream nginx_sock "unix:$MARIADB_SOCKET" &&
    timed start_redis &&
    timed start_kafka_mock kafka 3 envkit-test:3 ||
    status=$?

  # Waited for even when a start above failed: teardown_file can only stop a RabbitMQ
  # whose pid file exists.
  if ! wait "$rabbit_job"; then
    cat "$BATS_FILE_TMPDIR/rabbitmq.start" >&2
    status=1
  fi
  ((status == 0)) || return "$status"
  printf '# start_rabbitmq (in parallel): %s s\n' "$(elapsed_since "$rabbit_start")" >&3
  start_rabbitmq
}

teardown_file() {
  stop_all_servers
}

mariadb_tcp() {
  local port=$1
  shift
  env MYSQL_PWD="$MARIADB_PASSWORD" mariadb --no-defaults --host=127.0.0.1 --port="$port" \
    --user="$MARIADB_USER" --default-character-set=utf8mb4 --connect-timeout=5 \
    --batch --skip-column-names "$@" "$MARIADB_DATABASE"
}

amqp_url() {
  printf 'amqp://%s:%s@127.0.0.1:%s/%%2f' "$RABBITMQ_USER" "$RABBITMQ_PASSWORD" "$RABBITMQ_PORT"
}

@test "free_port prints a port in the harness range that nothing listens on" {
  run -0 --separate-stderr free_port
  [[ $output =~ ^[0-9]+$ ]]
  ((output >= 20000 && output < 32000))
  run -0 ss -Hltn "( sport = :$output )"
  assert_output ''
}

@test "MariaDB URL names the user and database but no password" {
  assert_equal "$MARIADB_URL" "mysql://envkit@127.0.0.1:$MARIADB_PORT/envkit"
  assert_equal "$MARIADB_USER" envkit
  assert_equal "$MARIADB_DATABASE" envkit
  assert [ -S "$MARIADB_SOCKET" ]
  assert [ -d "$MARIADB_DATADIR/envkit" ]
}

@test "mariadb through the nginx TCP tunnel: the envkit user and its password work" {
  run -0 mariadb_tcp "$NGINX_PORT" -e 'SELECT 1, CURRENT_USER()'
  assert_output $'1\tenvkit@%'
}

@test "mariadb through nginx rejects a wrong password" {
  run -1 env MYSQL_PWD=wrong mariadb --no-defaults -h 127.0.0.1 -P "$NGINX_PORT" -u envkit -e 'SELECT 1'
  assert_output --partial 'Access denied'
}

@test "time-zone tables are loaded: SET time_zone='America/Bogota' works" {
  run -0 mariadb_tcp "$NGINX_PORT" -e "SET time_zone='America/Bogota';
    SELECT @@session.time_zone, CONVERT_TZ('2024-01-01 12:00:00', 'UTC', 'America/Bogota')"
  assert_output $'America/Bogota\t2024-01-01 07:00:00'
}

@test "an emoji round-trips through the tunnel as 4 bytes of utf8mb4" {
  run -0 mariadb_tcp "$NGINX_PORT" -e "
    CREATE TABLE emoji (id INT PRIMARY KEY, s VARCHAR(16)) CHARACTER SET utf8mb4;
    INSERT INTO emoji VALUES (1, '🌦');
    SELECT s, HEX(s) FROM emoji WHERE id = 1"
  assert_output $'🌦\tF09F8CA6'
}

@test "nginx in front of the MariaDB unix socket" {
  run -0 mariadb_tcp "$NGINX_SOCK_PORT" -e 'SELECT CURRENT_USER(), @@character_set_connection'
  assert_output $'envkit@%\tutf8mb4'
}

@test "the envkit user holds the global privileges a backup tool needs" {
  run -0 mariadb_tcp "$NGINX_PORT" -e 'SHOW GRANTS'
  # MariaDB 10.11 spells REPLICATION CLIENT as BINLOG MONITOR.
  local privilege
  for privilege in SELECT RELOAD PROCESS 'LOCK TABLES' 'BINLOG MONITOR' 'SHOW VIEW' EVENT TRIGGER; do
    assert_output --partial "$privilege"
  done
  assert_output --partial 'GRANT ALL PRIVILEGES ON `envkit`.*'
}

@test "MARIADB_CLIENT runs the client as root over the socket" {
  # The variable is a command line, meant to be split.
  # shellcheck disable=SC2086
  run -0 $MARIADB_CLIENT -N -e 'SELECT CURRENT_USER(), COUNT(*) > 500 FROM mysql.time_zone_name'
  assert_output $'root@localhost\t1'
}

@test "MariaDB stopped and started again keeps its port and its data" {
  mariadb_tcp "$MARIADB_PORT" -e 'CREATE TABLE kept (n INT); INSERT INTO kept VALUES (42)'
  local port=$MARIADB_PORT pid
  pid=$(<"$ENVKIT_SERVERS_DIR/mariadb.mariadb/pid")

  run -0 stop_mariadb
  run -1 pgrep_live -g "$pid"
  run -1 mariadb_tcp "$port" -e 'SELECT 1'

  start_mariadb
  assert_equal "$MARIADB_PORT" "$port"
  run -0 mariadb_tcp "$NGINX_PORT" -e 'SELECT n FROM kept'
  assert_output 42
}

@test "MariaDB killed with SIGKILL recovers committed rows on the next start" {
  mariadb_tcp "$MARIADB_PORT" -e 'CREATE TABLE crash (n INT); INSERT INTO crash VALUES (7)'
  run -0 kill_mariadb
  run -1 mariadb_tcp "$MARIADB_PORT" -e 'SELECT 1'
  start_mariadb
  run -0 mariadb_tcp "$MARIADB_PORT" -e 'SELECT n FROM crash'
  assert_output 7
}

@test "a named MariaDB gets its own port, data and MARIADB_EXTRA_CONF-style config" {
  export TZDB_EXTRA_CONF='default-time-zone=America/Bogota'
  start_mariadb tzdb
  [[ $TZDB_PORT != "$MARIADB_PORT" ]]
  # shellcheck disable=SC2086
  run -0 $TZDB_CLIENT -N -e 'SELECT @@global.time_zone'
  assert_output America/Bogota
  run -0 destroy_mariadb tzdb
  assert [ ! -e "$TZDB_DATADIR" ]
}

@test "a server that cannot start fails fast with one error line and its log" {
  export BROKEN_EXTRA_CONF='no-such-option=1'
  run -1 --separate-stderr start_mariadb broken
  assert_output ''
  [[ ${stderr_lines[0]} == "start_mariadb: error: mariadbd 'broken' on port "*" exited during start-up" ]]
  [[ $stderr == *"unknown variable 'no-such-option=1'"* ]]
}

@test "usage errors are one line on stderr" {
  run -1 --separate-stderr start_nginx_stream not-a-backend
  assert_equal "$stderr" "start_nginx_stream: error: backend 'not-a-backend' is not HOST:PORT or unix:/path"
  run -1 --separate-stderr start_redis 'bad name'
  assert_equal "${#stderr_lines[@]}" 1
}

@test "redis-cli: PING, SET and GET" {
  assert_equal "$REDIS_URL" "redis://127.0.0.1:$REDIS_PORT/0"
  run -0 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING
  assert_output PONG
  run -0 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SET envkit:greeting 'hola 🌦'
  assert_output OK
  run -0 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" GET envkit:greeting
  assert_output 'hola 🌦'
  run -0 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG GET repl-diskless-sync-delay
  assert_line --index 1 0
}

@test "REDIS_EXTRA_CONF-style lines reach a named Redis: requirepass" {
  export LOCKED_EXTRA_CONF='requirepass s3cret'
  start_redis locked
  [[ $LOCKED_PORT != "$REDIS_PORT" ]]
  run -0 redis-cli -h 127.0.0.1 -p "$LOCKED_PORT" PING
  assert_output --partial NOAUTH
  run -0 env REDISCLI_AUTH=s3cret redis-cli -h 127.0.0.1 -p "$LOCKED_PORT" PING
  assert_output PONG
  run -0 stop_redis locked
  run -1 pgrep_live -g "$(<"$ENVKIT_SERVERS_DIR/redis.locked/pid")"
}

@test "amqp-tools: declare, publish and get with the envkit user" {
  assert_equal "$RABBITMQ_URL" "amqp://envkit@127.0.0.1:$RABBITMQ_PORT/%2f"
  local url
  url=$(amqp_url)
  run -0 timeout 20 amqp-declare-queue -u "$url" -q envkit.test
  assert_output envkit.test
  run -0 timeout 20 amqp-publish -u "$url" -r envkit.test -b 'reading 21.5'
  run -0 timeout 20 amqp-get -u "$url" -q envkit.test
  assert_output 'reading 21.5'
  # Consumed: the queue is empty now, which amqp-get reports as a failure.
  run ! timeout 20 amqp-get -u "$url" -q envkit.test
}

@test "RabbitMQ refuses a wrong password, and rabbitmqctl_for reaches the private node" {
  run ! timeout 20 amqp-declare-queue -u "amqp://envkit:wrong@127.0.0.1:$RABBITMQ_PORT/%2f" -q nope
  # rabbitmqctl bounds its own wait (--timeout); `timeout` cannot run a shell function.
  run -0 rabbitmqctl_for -q --timeout 60 list_users
  assert_output --partial envkit
  refute_output --partial guest
  run -0 timeout 60 "$RABBITMQ_CTL" -q list_vhosts
  assert_line /
}

@test "RabbitMQ stopped and started again keeps its port and a durable queue's messages" {
  local url port dir=$ENVKIT_SERVERS_DIR/rabbitmq.rabbitmq
  url=$(amqp_url)
  port=$RABBITMQ_PORT
  run -0 timeout 20 amqp-declare-queue -u "$url" -d -q envkit.durable
  run -0 timeout 20 amqp-publish -u "$url" -r envkit.durable -p -b 'survives a restart'

  run -0 stop_rabbitmq
  run -1 pgrep_live -g "$(<"$dir/pid")"
  run -1 pgrep_live -g "$(<"$dir/epmd.pid")"
  run ! timeout 20 amqp-get -u "$url" -q envkit.durable

  start_rabbitmq
  assert_equal "$RABBITMQ_PORT" "$port"
  run -0 timeout 20 amqp-get -u "$url" -q envkit.durable
  assert_output 'survives a restart'
}

@test "kcat produces 10 messages to the Kafka mock and consumes them back" {
  run -0 timeout 20 kcat -b "$KAFKA_BOOTSTRAP" -L -t envkit-test
  assert_output --partial '3 brokers:'
  assert_output --partial 'with 3 partitions'

  seq 1 10 | timeout 20 kcat -b "$KAFKA_BOOTSTRAP" -P -t envkit-test
  run -0 --separate-stderr timeout 20 kcat -b "$KAFKA_BOOTSTRAP" -C -t envkit-test -o beginning -c 10 -e -q
  assert_equal "$(sort -n <<<"$output" | tr '\n' ' ')" '1 2 3 4 5 6 7 8 9 10 '
}

@test "every server listens on 127.0.0.1 only" {
  local -a ports=() kafka=()
  local file port
  for file in "$ENVKIT_SERVERS_DIR"/*.*/port "$ENVKIT_SERVERS_DIR"/*.*/dist_port "$ENVKIT_SERVERS_DIR"/*.*/epmd_port; do
    if [[ -s $file ]]; then ports+=("$(<"$file")"); fi
  done
  IFS=, read -ra kafka <<<"$KAFKA_BOOTSTRAP"
  ports+=("${kafka[@]##*:}")
  for port in "${ports[@]}"; do
    run -0 ss -Hltn "( sport = :$port )"
    # The named test databases may be down by now; whatever listens must be loopback.
    if [[ -z $output ]]; then continue; fi
    # epmd adds [::1] to any address it is given; that is loopback too.
    run -0 awk -v p="$port" '$4 != "127.0.0.1:" p && $4 != "[::1]:" p { print "not loopback:", $4 }' <<<"$output"
    assert_output ''
  done
  ((${#ports[@]} >= 9))
}

@test "stop_all_servers leaves no process behind" {
  local -a pgids=() ports=()
  local file
  for file in "$ENVKIT_SERVERS_DIR"/*.*/pid "$ENVKIT_SERVERS_DIR"/*.*/epmd.pid; do
    if [[ -s $file ]]; then pgids+=("$(<"$file")"); fi
  done
  for file in "$ENVKIT_SERVERS_DIR"/*.*/port "$ENVKIT_SERVERS_DIR"/*.*/epmd_port; do
    if [[ -s $file ]]; then ports+=("$(<"$file")"); fi
  done
  ((${#pgids[@]} >= 7))
  run -0 pgrep_live -f -- "$ENVKIT_SERVERS_DIR"

  run -0 stop_all_servers

  local pgid port
  for pgid in "${pgids[@]}"; do
    run -1 pgrep_live -g "$pgid"
  done
  run -1 pgrep_live -f -- "$ENVKIT_SERVERS_DIR"
  for port in "${ports[@]}"; do
    run -0 ss -Hltn "( sport = :$port )"
    assert_output ''
  done
}
