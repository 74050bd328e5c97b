# Starts and stops real servers (MariaDB, Redis, RabbitMQ, nginx stream, Kafka mock, MongoDB test server) on loopback for the Bats tests.
#
# Sourced by tests/lib/test_helper.bash. Every server runs in its own directory under
# $ENVKIT_SERVERS_DIR, in its own session (setsid), with a pid file and one log, and every
# start waits, bounded, until the server answers its own protocol. Start/stop state lives in
# files, not shell variables, because Bats runs setup_file, each test and teardown_file in
# different processes.
#
# Interface (NAME defaults to the kind; variables are prefixed with NAME upper-cased,
# '-' -> '_', so `start_mariadb` exports MARIADB_PORT and `start_mariadb db2` DB2_PORT):
#   servers_init                      creates and exports $ENVKIT_SERVERS_DIR
#   free_port                         prints a free TCP port on 127.0.0.1
#   start_mariadb [NAME]              <P>_HOST _PORT _SOCKET _USER _PASSWORD _DATABASE _URL
#                                     _DATADIR _CLIENT; extra my.cnf lines from
#                                     <P>_EXTRA_CONF, else MARIADB_EXTRA_CONF. A NAME that
#                                     was stopped comes back with its data and port. With
#                                     skip-networking among the extra lines, <P>_PORT is
#                                     "none" and <P>_URL names the socket.
#   stop_mariadb | kill_mariadb | destroy_mariadb [NAME]   mariadb_for [NAME] ARGS...
#   start_redis [NAME]                <P>_HOST _PORT _SOCKET _URL _CLI; <P>_EXTRA_CONF or
#                                     REDIS_EXTRA_CONF lines appended to redis.conf
#   stop_redis [NAME]
#   start_rabbitmq [NAME]             <P>_HOST _PORT _USER _PASSWORD _URL _CTL (a rabbitmqctl
#                                     script for this node); <P>_EXTRA_CONF or
#                                     RABBITMQ_EXTRA_CONF lines appended to rabbitmq.conf
#   rabbitmqctl_for [NAME] ARGS...    stop_rabbitmq [NAME] (stops its epmd too)
#   start_nginx_stream [NAME] BACKEND <P>_HOST _PORT; BACKEND is HOST:PORT or unix:/path
#   start_nginx_https [NAME] CERT KEY HOST:PORT...   <P>_HOST _PORT: TLS load balancer, round robin
#   stop_nginx [NAME]
#   start_kafka_mock [NAME] [BROKERS] [TOPIC[:PARTITIONS]]...   <P>_BOOTSTRAP _URL
#                                     (the first argument is a NAME unless it is a number)
#   stop_kafka_mock [NAME]
#   start_mongo [NAME] [--replica-set RS] [--state primary|secondary|startup] [--member H:P]...
#               [--primary H:P] [--no-snapshot]
#                                     <P>_HOST _PORT _URL _LOG _TEST_SERVER: the project's
#                                     MongoDB wire-protocol server (tests/lib/mongo_server.py,
#                                     read its banner for what it does and does not do).
#                                     _URL is mongodb://127.0.0.1:PORT, plus /?replicaSet=RS
#                                     with --replica-set; _LOG has one line per request (op,
#                                     db, command). ENVKIT_MONGO_URL_<P>, else ENVKIT_MONGO_URL,
#                                     names a real mongod to use instead (then _TEST_SERVER=0,
#                                     _LOG empty); ENVKIT_MONGO_PYTHON the python3 with bson.
#   stop_mongo [NAME]                 mongo_command [NAME] DB JSON: one command through
#                                     pymongo, reply as canonical Extended JSON on stdout;
#                                     e.g. mongo_command rsa admin '{"envkitSetState": "secondary"}'
#   start_mongo_rs NAME [MEMBERS] [--election-delay-ms N] [--repl-delay-ms N]
#                  [--unsafe-early-majority-ack]
#                                     a replicating replica set named NAME (MEMBERS, default 3,
#                                     one mongo_server.py process, one port each): <P>_URL
#                                     mongodb://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/?replicaSet=NAME
#                                     _HOSTS (H:P,H:P,H:P) _PORTS (P1 P2 P3) _HOST _PORT (the
#                                     first) _LOG _TEST_SERVER. Returns once a primary is
#                                     elected. w: majority is the default write concern.
#                                     ENVKIT_TEST_MONGO_URI_<P> names a real replica set
#                                     instead (then _TEST_SERVER=0, _LOG empty, and the
#                                     controls below return 2: tests skip what needs them).
#                                     stop_mongo NAME stops the whole set (its data is lost).
#   stop_mongo_rs_primary NAME [--after-writes N [--before-replication]]
#                                     stops the primary as a killed mongod stops (port closed,
#                                     connections dropped), waits for the election and prints
#                                     the old primary's H:P. With --after-writes it only arms
#                                     the stop: at the primary's N-th next write, once that is
#                                     majority-applied and before the reply (the driver must
#                                     retry it), or with --before-replication before any other
#                                     member has it (the set loses it; the driver retries).
#   restart_mongo_rs_member NAME [H:P] starts stopped members (all by default) and waits until
#                                     they are secondaries that have caught up
#   mongo_rs_control NAME [--wait primary|caught-up] [--field F] [JSON]
#                                     the test server's envkitRs command (default status) on
#                                     any running member, reply as JSON (see mongo_server.py)
#   start_hostile_server NAME MODE [--cert F --key F]   <P>_HOST _PORT: tests/lib/hostile_server.py
#                                     (silent, garbage, close-mid-handshake, huge, slow-drip,
#                                     http), TLS with --cert/--key; stop_hostile_server NAME
#   stop_all_servers                  for teardown_file; non-zero if anything survived
# A start of a NAME that is already running waits until it answers and exports its
# variables again: so a slow start (RabbitMQ) can run in a background job while others
# start, and be repeated after `wait` to pick up the variables (see tests/bats/servers.bats).
# ENVKIT_SERVER_START_TIMEOUT (s) overrides the start-up bounds; ENVKIT_TEST_CACHE where
# the initialised MariaDB data directory is cached.
#
# Facts about these servers on Debian 12 without systemd that shaped this file:
# - PID 1 on these machines reaps orphans lazily (about every 2 s), so a stopped daemon
#   lingers as a zombie and `kill -0` still succeeds: liveness is read from /proc state.
# - mariadbd refuses to run as root without `user=root`; its time-zone tables are empty
#   after mariadb-install-db, and a named default-time-zone then fails the very first start.
#   The cached data directory has them loaded, so `default-time-zone=America/Bogota` in
#   MARIADB_EXTRA_CONF works. A fresh data directory costs ~3 s (install) + ~1 s (tz tables);
#   a copy of the cached one (34 MB with a 16 MB redo log) starts in ~0.7 s.
# - Debian's mariadb client falls back to utf8mb3 under C.UTF-8 and mangles emoji: the
#   client string below passes --default-character-set=utf8mb4.
# - Never probe MariaDB through TCP connect-and-close (or through the nginx in front of it):
#   each aborted handshake counts against max_connect_errors and can get 127.0.0.1 blocked.
#   The probes here use the unix socket and /proc/net/tcp.
# - /usr/sbin/rabbitmq-server and /usr/sbin/rabbitmqctl switch to the rabbitmq user (whose
#   HOME holds another Erlang cookie); the scripts in /usr/lib/rabbitmq/bin do not.
# - Erlang starts a detached epmd on 4369 that outlives the node unless one is already
#   listening on ERL_EPMD_PORT: each RabbitMQ gets its own epmd, started and stopped here.
#   epmd listens on [::1] as well as on the ERL_EPMD_ADDRESS it is given.
# - RabbitMQ puts its distribution port at AMQP port + 20000 unless RABBITMQ_DIST_PORT is
#   set, which can collide with another instance or with rabbitmqctl's own range.
# - RabbitMQ creates `default_user` from rabbitmq.conf on its first boot, before the AMQP
#   listener opens, so no rabbitmqctl call (a ~1 s Erlang boot each) is needed at start-up.
# - The rabbitmq-server script traps SIGTERM and stops the node cleanly.
# - RabbitMQ's boot is CPU: ~4 s of it, 5.5 s of wall time with the machine half busy and
#   up to 45 s when builds share the 2 cores. Neither a plugins directory trimmed to what
#   `rabbit` needs nor skipping the extra Erlang VM its prelaunch boots to make sure epmd
#   runs made a measurable difference; what helps is booting it in the background while
#   the other servers start.
# - Erlang schedulers spin while idle (+sbwt); on 2 shared cores that steals CPU from every
#   other server and test, so it is turned off.
# - nginx opens its compiled-in error log under /var/log before reading its config unless
#   given `-e`; `proxy_timeout` defaults to 10 minutes of idleness, too short for long dumps;
#   run as root, its workers drop to `nobody`, who cannot reach a socket in a 0700 temp dir.
# - librdkafka's mock cluster binds its brokers to random ports, never auto-creates topics,
#   and keeps only 100,000 messages or 5 MiB per partition.
# - Redis waits repl-diskless-sync-delay (5 s by default) before `redis-cli --rdb` gets data.
#
# Measured start times (2 cores, load ~4): MariaDB 4.8 s with a cold cache, 0.7 s warm;
# Redis, nginx and the Kafka mock 0.1 s; RabbitMQ 5.5 s. Stops: 0.1-0.5 s, RabbitMQ 1.3 s,
# the Kafka mock up to 1 s (librdkafka's mock thread ticks once a second).
#
# Ports come from free_port, in 20000-31999: below the kernel's ephemeral range
# (32768-60999), so they never collide with client sockets or the Kafka mock's brokers.

# The password of every `envkit` user the harness creates; tests are on loopback only.
_SERVERS_PASSWORD=envkit-test-pw
# Bump when the recipe of the cached MariaDB data directory changes.
_SERVERS_MARIADB_CACHE_VERSION=1

# --- plumbing ---------------------------------------------------------------------------

servers_init() {
  if [[ -n ${ENVKIT_SERVERS_DIR:-} && -d ${ENVKIT_SERVERS_DIR} ]]; then
    export ENVKIT_SERVERS_DIR
    return 0
  fi
  if [[ -z ${ENVKIT_SERVERS_DIR:-} ]]; then
    if [[ -n ${BATS_FILE_TMPDIR:-} ]]; then
      ENVKIT_SERVERS_DIR=$BATS_FILE_TMPDIR/servers
    else
      ENVKIT_SERVERS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/envkit-servers.XXXXXX") || {
        echo "servers_init: error: cannot create a servers directory under ${TMPDIR:-/tmp}" >&2
        return 1
      }
      # Ours to delete once everything in it has stopped (Bats cleans up its own dirs).
      : >"$ENVKIT_SERVERS_DIR/.remove-when-stopped"
    fi
  fi
  if ! mkdir -p "$ENVKIT_SERVERS_DIR"; then
    echo "servers_init: error: cannot create $ENVKIT_SERVERS_DIR" >&2
    return 1
  fi
  ENVKIT_SERVERS_DIR=$(cd "$ENVKIT_SERVERS_DIR" && pwd)
  export ENVKIT_SERVERS_DIR
  # Made here, once, so servers started in parallel subshells do not race to make it.
  _servers_socket_dir >/dev/null || return 1
}

# Unix socket paths must fit in 108 bytes; Bats temp dirs under a deep TMPDIR may not.
# A short symlink in /tmp stands in for the servers directory in socket paths.
_servers_socket_dir() {
  local dir=$ENVKIT_SERVERS_DIR
  if ((${#dir} <= 60)); then
    printf '%s\n' "$dir"
    return 0
  fi
  if [[ -s $dir/.short ]]; then
    cat "$dir/.short"
    return 0
  fi
  local short
  if ! short=$(mktemp -u /tmp/envkit-s.XXXXXX) || ! ln -s "$dir" "$short"; then
    echo "servers: error: cannot make a short symlink for socket paths in /tmp" >&2
    return 1
  fi
  printf '%s\n' "$short" >"$dir/.short"
  printf '%s\n' "$short"
}

free_port() {
  local port i
  for ((i = 0; i < 100; i++)); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    # Any state counts (LISTEN, ESTAB, TIME-WAIT): a bind could still fail on it.
    if [[ -z $(ss -Htan "( sport = :$port )" 2>/dev/null) ]]; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  echo "free_port: error: no free TCP port found in 100 tries" >&2
  return 1
}

# Milliseconds from now as a deadline, and whether it has passed. No subshells: these run
# in polling loops, and every fork counts on 2 shared cores.
_servers_deadline() {
  local now=${EPOCHREALTIME/./}
  _servers_deadline_ms=$((now / 1000 + $1))
}

_servers_past() {
  local now=${EPOCHREALTIME/./}
  ((now / 1000 > $1))
}

# NAME -> variable prefix: `mariadb` -> MARIADB, `db-2` -> DB_2.
_servers_prefix() {
  local p=${1^^}
  printf '%s\n' "${p//[^A-Z0-9_]/_}"
}

_servers_check_name() {
  local func=$1 name=$2
  if [[ ! $name =~ ^[A-Za-z][A-Za-z0-9_-]{0,23}$ ]]; then
    echo "$func: error: bad server name '$name' (up to 24 letters, digits, '-' or '_', starting with a letter)" >&2
    return 1
  fi
}

# One-line error, then the tail of the server's log so a failed start explains itself.
# Returns 0 so that callers under `set -e` (Bats) still reach their clean-up.
_servers_report() {
  local func=$1 message=$2 log=${3:-}
  echo "$func: error: $message" >&2
  if [[ -n $log && -s $log ]]; then
    echo "$func: last lines of $log:" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
  fi
}

# Alive means running: a zombie waiting for PID 1 to reap it is not.
_servers_alive() {
  local pid=$1 line
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  read -r line 2>/dev/null <"/proc/$pid/stat" || return 1
  line=${line##*) }
  [[ ${line:0:1} != Z && ${line:0:1} != X ]]
}

# A daemon runs as the leader of its own process group; its children (nginx workers,
# Erlang port programs) count as the server too. Reads /proc with builtins only: stop
# loops poll this many times a second, in parallel, and forking ps for it loaded the CPU.
_servers_group_alive() {
  local pgid=$1 file line state pgrp
  [[ $pgid =~ ^[0-9]+$ ]] || return 1
  # The leader's pid is the group id: the cheap answer while it runs.
  if _servers_alive "$pgid"; then
    return 0
  fi
  for file in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$file" || continue
    line=${line##*) }    # state ppid pgrp ...
    state=${line%% *}
    line=${line#* }
    line=${line#* }
    pgrp=${line%% *}
    if [[ $pgrp == "$pgid" && $state != Z && $state != X ]]; then
      return 0
    fi
  done
  return 1
}

# Prints the pid in FILE, or nothing; never fails, so `pid=$(...)` is safe under set -e.
_servers_read_pid() {
  local file=$1
  if [[ -s $file ]]; then
    printf '%s\n' "$(<"$file")"
  fi
}

# Runs CMD... as a session leader with stdin/stdout/stderr redirected and every other
# inherited descriptor closed, so Bats (which waits on its fd 3 pipe) never hangs on it.
# The pid is written by the process itself before exec, so it is right whether or not
# setsid had to fork. The extra subshell makes the daemon an orphan at once: the calling
# shell then has no job to report ("Killed ...") when a test kills the server.
_servers_spawn() {
  local pidfile=$1 stdin=$2 stdout=$3 log=$4
  shift 4
  rm -f "$pidfile"
  # shellcheck disable=SC2016
  (setsid "$BASH" -c '
    echo $$ >"$1.tmp" && mv -f "$1.tmp" "$1"
    shift
    # No redirection on this loop: bash would park stderr on a high fd that the loop closes.
    for fd in /proc/$$/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    exec "$@"' envkit-spawn "$pidfile" "$@" <>"$stdin" >>"$stdout" 2>>"$log" 3>&- &)
  _servers_deadline 5000
  local deadline=$_servers_deadline_ms
  while [[ ! -s $pidfile ]]; do
    if _servers_past "$deadline"; then
      echo "servers: error: ${1:-the server} did not start (no pid file $pidfile after 5 s)" >&2
      return 1
    fi
    sleep 0.02
  done
}

# Polls CHECK... until it succeeds, the process dies, or TIMEOUT seconds pass. The pause
# grows from 0.05 s to 0.4 s: quick servers are seen at once, and a RabbitMQ booting for
# 10 s costs some 30 probes instead of 100.
_servers_await() {
  local func=$1 what=$2 pid=$3 timeout=$4 log=$5
  shift 5
  _servers_deadline $((timeout * 1000))
  local deadline=$_servers_deadline_ms pause=0.05
  while :; do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ! _servers_alive "$pid"; then
      _servers_report "$func" "$what exited during start-up" "$log"
      return 1
    fi
    if _servers_past "$deadline"; then
      _servers_report "$func" "$what did not answer within ${timeout} s" "$log"
      return 1
    fi
    sleep "$pause"
    case $pause in
      0.05) pause=0.1 ;;
      0.1) pause=0.2 ;;
      *) pause=0.4 ;;
    esac
  done
}

# Whether anything listens on TCP PORT, read from /proc with builtins: this runs in every
# readiness poll, and `ss` there meant hundreds of forks per test file.
_servers_listening() {
  local port=$1 hex file local_address state rest
  printf -v hex '%04X' "$port"
  for file in /proc/net/tcp /proc/net/tcp6; do
    [[ -r $file ]] || continue
    while read -r _ local_address _ state rest; do
      if [[ $state == 0A && ${local_address##*:} == "$hex" ]]; then
        return 0
      fi
    done <"$file"
  done
  return 1
}

# Sends SIGNAL to PID, waits for its whole process group to go, then SIGKILLs what is left.
_servers_stop_group() {
  local func=$1 pid=$2 signal=${3:-TERM} timeout=${4:-${ENVKIT_SERVER_STOP_TIMEOUT:-30}}
  [[ -n $pid ]] || return 0
  if _servers_group_alive "$pid"; then
    kill -s "$signal" "$pid" 2>/dev/null || true
    _servers_deadline $((timeout * 1000))
    local deadline=$_servers_deadline_ms
    while _servers_group_alive "$pid" && ! _servers_past "$deadline"; do
      sleep 0.1
    done
  fi
  if _servers_group_alive "$pid"; then
    echo "$func: warning: process group $pid still running after SIG$signal and ${timeout} s; sending SIGKILL" >&2
    kill -s KILL -- "-$pid" 2>/dev/null || true
    _servers_deadline 5000
    local deadline=$_servers_deadline_ms
    while _servers_group_alive "$pid" && ! _servers_past "$deadline"; do
      sleep 0.05
    done
  fi
  if _servers_group_alive "$pid"; then
    echo "$func: error: process group $pid survived SIGKILL" >&2
    return 1
  fi
}

# A port for NAME's server: the one it had before (restarts keep their address), unless
# that is now taken by someone else.
_servers_port_for() {
  local portfile=$1 port
  if [[ -s $portfile ]]; then
    port=$(<"$portfile")
    if ! _servers_listening "$port"; then
      printf '%s\n' "$port"
      return 0
    fi
  fi
  port=$(free_port) || return 1
  printf '%s\n' "$port" >"$portfile"
  printf '%s\n' "$port"
}

# Another parallel run may have taken the port between free_port and bind: worth a retry.
_servers_port_taken() {
  local log=$1
  [[ -f $log ]] && grep -qiE 'address already in use|eaddrinuse|errno: 98' "$log"
}

# One start attempt, after the spawn: waits until `READY ARGS...` answers (0). Otherwise stops
# the server and returns 2 when it lost a race for its port (the port file is removed, so
# the next attempt picks another), or 1 with the reason on stderr after the last attempt.
_servers_settle() {
  local caller=$1 what=$2 pid=$3 timeout=$4 log=$5 dir=$6 attempt=$7
  shift 7
  if _servers_await "$caller" "$what" "$pid" "$timeout" "$log" "$@" 2>"$dir/start.err"; then
    return 0
  fi
  _servers_stop_group "$caller" "$pid" KILL 5 || true
  if ((attempt < 3)) && _servers_port_taken "$log"; then
    rm -f "$dir/port"
    return 2
  fi
  cat "$dir/start.err" >&2
  return 1
}

# Extra config lines for NAME: <P>_EXTRA_CONF, else the kind's default variable.
_servers_extra_conf() {
  local default_var=$2 var=${1}_EXTRA_CONF
  if [[ -n ${!var+set} ]]; then
    printf '%s\n' "${!var}"
  elif [[ -n ${!default_var:-} ]]; then
    printf '%s\n' "${!default_var}"
  fi
}

# `cmd [NAME] ARGS...`: the first argument is a NAME only when such a server was started.
_servers_name_or_default() {
  local kind=$1 default=$2 first=${3:-}
  if [[ -n $first && -n ${ENVKIT_SERVERS_DIR:-} && -d $ENVKIT_SERVERS_DIR/$kind.$first ]]; then
    printf '%s\n' "$first"
  else
    printf '%s\n' "$default"
  fi
}

# Start-up bounds per kind, generous because they only matter when something is wrong:
# on a 2-core machine busy compiling, RabbitMQ took 45 s to boot where it takes 6 s idle.
# ENVKIT_SERVER_START_TIMEOUT (seconds) overrides them all.
_servers_timeout() {
  local kind_default=$1
  printf '%s\n' "${ENVKIT_SERVER_START_TIMEOUT:-$kind_default}"
}

# --- MariaDB ----------------------------------------------------------------------------

_servers_mariadb_conf() {
  local dir=$1 port=$2 sock=$3 extra=$4
  cat <<EOF
[mysqld]
user=root
datadir=$dir/data
socket=$sock
pid-file=$dir/mysqld.pid
tmpdir=$dir/tmp
port=$port
bind-address=127.0.0.1
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
# A small redo log keeps the cached data directory small and quick to copy.
innodb_log_file_size=16M
innodb_buffer_pool_size=64M
# A killed mariadbd loses nothing at 2 (the OS still has the log); only power loss would.
innodb_flush_log_at_trx_commit=2
# Nothing to warm up in a test database; skipping the dump makes stops quicker.
innodb_buffer_pool_dump_at_shutdown=OFF
innodb_buffer_pool_load_at_startup=OFF
max_connections=300
EOF
  if [[ -n $extra ]]; then
    printf '# from MARIADB_EXTRA_CONF\n%s\n' "$extra"
  fi
}

_servers_mariadb_client() {
  mariadb --no-defaults --protocol=socket --socket="$1" --user=root --default-character-set=utf8mb4 "${@:2}"
}

_servers_mariadb_ping() {
  _servers_mariadb_client "$1" --connect-timeout=2 -e 'SELECT 1'
}

# PORT "none": the server was started with skip-networking and answers on its socket only.
_servers_mariadb_ready() {
  if [[ $2 != none ]]; then _servers_listening "$2" || return 1; fi
  _servers_mariadb_ping "$1"
}

# Prints "none" when the extra my.cnf lines turn TCP off, else the port.
_servers_mariadb_tcp_port() {
  local extra=$1 port=$2
  if [[ $'\n'$extra =~ $'\n'[[:space:]]*skip[-_]networking[[:space:]]*($'\n'|$) ]]; then
    printf 'none\n'
  else
    printf '%s\n' "$port"
  fi
}

# Prints the path of the cached, initialised data directory, building it once.
_servers_mariadb_cache() {
  local root=${ENVKIT_TEST_CACHE:-${ENVKIT_BUILD_DIR:-/tmp}/envkit-test-cache}
  local version
  version=$(mariadbd --version 2>/dev/null | awk '{ print $3 }')
  if [[ -z $version ]]; then
    echo "start_mariadb: error: mariadbd not found or not runnable (install mariadb-server)" >&2
    return 1
  fi
  local cache=$root/mariadb-$version-v$_SERVERS_MARIADB_CACHE_VERSION
  if [[ -d $cache/mysql ]]; then
    printf '%s\n' "$cache"
    return 0
  fi
  mkdir -p "$root" || {
    echo "start_mariadb: error: cannot create the cache directory $root" >&2
    return 1
  }
  # Built under a private name and renamed into place, so parallel runs never see half a
  # cache; the loser of a race just throws its copy away. Builds older than an hour were
  # interrupted.
  find "$root" -maxdepth 1 -name '.mariadb-build.*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
  local build sockdir
  build=$(mktemp -d "$root/.mariadb-build.XXXXXX") || return 1
  sockdir=$(mktemp -d /tmp/envkit-mdb.XXXXXX) || return 1
  local log=$build/build.log sock=$sockdir/mysqld.sock
  mkdir -p "$build/tmp"
  _servers_mariadb_conf "$build" 0 "$sock" "" >"$build/my.cnf"
  printf 'skip-networking\n' >>"$build/my.cnf"
  local ok=1 pid=''
  if ! mariadb-install-db --defaults-file="$build/my.cnf" --auth-root-authentication-method=socket \
    --skip-test-db >>"$log" 2>&1; then
    _servers_report start_mariadb "mariadb-install-db failed while building the cache in $build" "$log"
    ok=0
  fi
  if ((ok)) && _servers_spawn "$build/pid" /dev/null "$log" "$log" mariadbd --defaults-file="$build/my.cnf"; then
    pid=$(_servers_read_pid "$build/pid")
    _servers_await start_mariadb "mariadbd (building the cache)" "$pid" "$(_servers_timeout 120)" "$log" \
      _servers_mariadb_ping "$sock" || ok=0
  else
    ok=0
  fi
  if ((ok)); then
    # The zoneinfo tree has a few files the converter warns about; those are harmless.
    if ! mariadb-tzinfo-to-sql /usr/share/zoneinfo 2>>"$log" | _servers_mariadb_client "$sock" mysql >>"$log" 2>&1; then
      _servers_report start_mariadb "loading the time-zone tables failed" "$log"
      ok=0
    fi
  fi
  if ((ok)); then
    # The backup tool's global privileges, and everything on its own database.
    if ! _servers_mariadb_client "$sock" >>"$log" 2>&1 <<EOF; then
DELETE FROM mysql.global_priv WHERE User = '';
CREATE DATABASE envkit CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER 'envkit'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('$_SERVERS_PASSWORD');
GRANT ALL PRIVILEGES ON envkit.* TO 'envkit'@'%';
GRANT RELOAD, PROCESS, REPLICATION CLIENT, SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON *.* TO 'envkit'@'%';
FLUSH PRIVILEGES;
EOF
      _servers_report start_mariadb "creating the envkit user and database failed" "$log"
      ok=0
    fi
  fi
  if [[ -n $pid ]]; then
    _servers_stop_group start_mariadb "$pid" TERM 60 || ok=0
  fi
  rm -rf "$sockdir"
  if ((ok)); then
    rm -f "$build/data/ib_buffer_pool"
    mv -T "$build/data" "$cache" 2>/dev/null || true
  fi
  rm -rf "$build"
  if ((ok)) && [[ -d $cache/mysql ]]; then
    printf '%s\n' "$cache"
    return 0
  fi
  return 1
}

_servers_mariadb_export() {
  local p=$1 dir=$2 port=$3 sock=$4
  export "${p}_HOST=127.0.0.1"
  export "${p}_PORT=$port"
  if [[ $port == none ]]; then
    export "${p}_URL=mysql://envkit@localhost/envkit?socket=$sock"
  else
    export "${p}_URL=mysql://envkit@127.0.0.1:$port/envkit"
  fi
  export "${p}_SOCKET=$sock"
  export "${p}_USER=envkit"
  export "${p}_PASSWORD=$_SERVERS_PASSWORD"
  export "${p}_DATABASE=envkit"
  export "${p}_DATADIR=$dir/data"
  export "${p}_CLIENT=mariadb --no-defaults --protocol=socket --socket=$sock --user=root --default-character-set=utf8mb4"
}

start_mariadb() {
  local name=${1:-mariadb}
  _servers_check_name start_mariadb "$name" || return 1
  servers_init || return 1
  local p dir sockdir
  p=$(_servers_prefix "$name")
  dir=$ENVKIT_SERVERS_DIR/mariadb.$name
  sockdir=$(_servers_socket_dir) || return 1
  local sock=$sockdir/mariadb.$name/mysqld.sock log=$dir/server.log
  mkdir -p "$dir/tmp" || return 1

  local pid extra tcp_port
  extra=$(_servers_extra_conf "$p" MARIADB_EXTRA_CONF)
  pid=$(_servers_read_pid "$dir/pid")
  if [[ -n $pid ]] && _servers_group_alive "$pid"; then
    # Already running (started in setup_file, or still starting in a background job):
    # hand out its variables again once it answers.
    tcp_port=$(_servers_mariadb_tcp_port "$extra" "$(<"$dir/port")")
    _servers_await start_mariadb "mariadbd '$name'" "$pid" "$(_servers_timeout 60)" "$log" \
      _servers_mariadb_ready "$sock" "$tcp_port" || return 1
    _servers_mariadb_export "$p" "$dir" "$tcp_port" "$sock"
    return 0
  fi

  if [[ ! -d $dir/data/mysql ]]; then
    local cache
    cache=$(_servers_mariadb_cache) || return 1
    rm -rf "$dir/data"
    if ! cp -a --reflink=auto "$cache" "$dir/data"; then
      _servers_report start_mariadb "cannot copy the cached data directory $cache to $dir/data"
      return 1
    fi
  fi

  local attempt port
  for attempt in 1 2 3; do
    port=$(_servers_port_for "$dir/port") || return 1
    tcp_port=$(_servers_mariadb_tcp_port "$extra" "$port")
    _servers_mariadb_conf "$dir" "$port" "$sock" "$extra" >"$dir/my.cnf"
    : >"$log"
    _servers_spawn "$dir/pid" /dev/null "$log" "$log" mariadbd --defaults-file="$dir/my.cnf" || return 1
    pid=$(_servers_read_pid "$dir/pid")
    local settled=0
    _servers_settle start_mariadb "mariadbd '$name' on port $port" "$pid" "$(_servers_timeout 60)" "$log" "$dir" "$attempt" \
      _servers_mariadb_ready "$sock" "$tcp_port" || settled=$?
    case $settled in
      0) _servers_mariadb_export "$p" "$dir" "$tcp_port" "$sock"; return 0 ;;
      2) continue ;;
      *) return 1 ;;
    esac
  done
}

stop_mariadb() {
  local name=${1:-mariadb}
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/mariadb.$name
  # mariadbd shuts down cleanly on SIGTERM: InnoDB flushed, nothing to recover next start.
  _servers_stop_group stop_mariadb "$(_servers_read_pid "$dir/pid")" TERM
}

kill_mariadb() {
  local name=${1:-mariadb}
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/mariadb.$name pid
  pid=$(_servers_read_pid "$dir/pid")
  [[ -n $pid ]] || return 0
  kill -s KILL -- "-$pid" 2>/dev/null || true
  _servers_stop_group kill_mariadb "$pid" KILL 5
}

# Keeps the port, so a database started again under NAME is found at the same address.
destroy_mariadb() {
  local name=${1:-mariadb}
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/mariadb.$name
  stop_mariadb "$name" || return 1
  rm -rf "$dir/data" "$dir/tmp"
}

mariadb_for() {
  local name
  name=$(_servers_name_or_default mariadb mariadb "${1:-}")
  if [[ $name == "${1:-}" ]]; then shift; fi
  local sockdir
  sockdir=$(_servers_socket_dir) || return 1
  _servers_mariadb_client "$sockdir/mariadb.$name/mysqld.sock" "$@"
}

# --- Redis ------------------------------------------------------------------------------

_servers_redis_ping() {
  local port=$1 reply
  reply=$(timeout 3 redis-cli --no-auth-warning -h 127.0.0.1 -p "$port" ping 2>&1) || true
  # NOAUTH is an answer too: the server is up, the test asked for requirepass.
  [[ $reply == PONG* || $reply == *NOAUTH* ]]
}

start_redis() {
  local name=${1:-redis}
  _servers_check_name start_redis "$name" || return 1
  servers_init || return 1
  local p dir sockdir
  p=$(_servers_prefix "$name")
  dir=$ENVKIT_SERVERS_DIR/redis.$name
  sockdir=$(_servers_socket_dir) || return 1
  local sock=$sockdir/redis.$name/redis.sock log=$dir/server.log
  mkdir -p "$dir/data" || return 1

  local pid port
  pid=$(_servers_read_pid "$dir/pid")
  if [[ -n $pid ]] && _servers_group_alive "$pid"; then
    port=$(<"$dir/port")
    _servers_await start_redis "redis-server '$name'" "$pid" "$(_servers_timeout 30)" "$log" \
      _servers_redis_ping "$port" || return 1
  else
    local extra attempt started=0
    extra=$(_servers_extra_conf "$p" REDIS_EXTRA_CONF)
    for attempt in 1 2 3; do
      port=$(_servers_port_for "$dir/port") || return 1
      cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $port
unixsocket $sock
unixsocketperm 700
dir $dir/data
pidfile $dir/redis.pid
daemonize no
logfile ""
save ""
appendonly no
repl-diskless-sync-delay 0
EOF
      [[ -z $extra ]] || printf '# from REDIS_EXTRA_CONF\n%s\n' "$extra" >>"$dir/redis.conf"
      : >"$log"
      _servers_spawn "$dir/pid" /dev/null "$log" "$log" redis-server "$dir/redis.conf" || return 1
      pid=$(_servers_read_pid "$dir/pid")
      local settled=0
      _servers_settle start_redis "redis-server '$name' on port $port" "$pid" "$(_servers_timeout 30)" "$log" "$dir" "$attempt" \
        _servers_redis_ping "$port" || settled=$?
      case $settled in
        0) started=1; break ;;
        2) continue ;;
        *) return 1 ;;
      esac
    done
    ((started)) || return 1
  fi
  export "${p}_HOST=127.0.0.1"
  export "${p}_PORT=$port"
  export "${p}_SOCKET=$sock"
  export "${p}_URL=redis://127.0.0.1:$port/0"
  export "${p}_CLI=redis-cli -h 127.0.0.1 -p $port"
}

stop_redis() {
  local name=${1:-redis}
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/redis.$name
  _servers_stop_group stop_redis "$(_servers_read_pid "$dir/pid")" TERM
}

# --- RabbitMQ ---------------------------------------------------------------------------

# The environment that both the node and rabbitmqctl need to find each other privately.
_servers_rabbitmq_env() {
  local dir=$1
  printf '%s\n' \
    "HOME=$dir/home" \
    "ERL_EPMD_PORT=$(<"$dir/epmd_port")" \
    "RABBITMQ_NODENAME=envkit@localhost" \
    "RABBITMQ_DIST_PORT=$(<"$dir/dist_port")" \
    "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf" \
    "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
    "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
    "RABBITMQ_LOG_BASE=$dir/log" \
    "RABBITMQ_LOGS=-" \
    "RABBITMQ_PID_FILE=$dir/rabbitmq.pid" \
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none" \
    "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
}

_servers_rabbitmq_run() {
  local dir=$1
  shift
  local -a envs
  mapfile -t envs < <(_servers_rabbitmq_env "$dir")
  env "${envs[@]}" "$@"
}

# Speaks the first step of AMQP: a live broker answers the protocol header with a
# Connection.Start method frame (type 1).
_servers_amqp_answers() {
  local port=$1
  # shellcheck disable=SC2016
  timeout 3 "$BASH" -c '
    exec 5<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "AMQP\x00\x00\x09\x01" >&5
    IFS= read -r -d "" -N 1 -t 2 -u 5 byte || exit 1
    [[ $byte == $'"'"'\x01'"'"' ]]' amqp-probe "$port"
}

# The listener opens at the very end of the boot: until then a look at /proc is enough.
_servers_rabbitmq_ready() {
  _servers_listening "$1" && _servers_amqp_answers "$1"
}

start_rabbitmq() {
  local name=${1:-rabbitmq}
  _servers_check_name start_rabbitmq "$name" || return 1
  servers_init || return 1
  local p dir
  p=$(_servers_prefix "$name")
  dir=$ENVKIT_SERVERS_DIR/rabbitmq.$name
  local log=$dir/server.log
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log" || return 1

  local pid port
  pid=$(_servers_read_pid "$dir/pid")
  if [[ -n $pid ]] && _servers_group_alive "$pid"; then
    port=$(<"$dir/port")
    _servers_await start_rabbitmq "rabbitmq-server '$name'" "$pid" "$(_servers_timeout 180)" "$log" \
      _servers_rabbitmq_ready "$port" || return 1
  else
    if [[ ! -s $dir/home/.erlang.cookie ]]; then
      # Written before either side starts, so the node and rabbitmqctl never race to make one.
      printf 'envkit%s%s%s\n' "$RANDOM" "$RANDOM" "$RANDOM" >"$dir/home/.erlang.cookie"
      chmod 400 "$dir/home/.erlang.cookie"
    fi
    : >"$dir/rabbitmq-env.conf"
    printf '[].\n' >"$dir/enabled_plugins"
    local attempt started=0 epmd_pid extra
    extra=$(_servers_extra_conf "$p" RABBITMQ_EXTRA_CONF)
    for attempt in 1 2 3; do
      port=$(_servers_port_for "$dir/port") || return 1
      _servers_port_for "$dir/dist_port" >/dev/null || return 1
      _servers_port_for "$dir/epmd_port" >/dev/null || return 1
      local epmd_port
      epmd_port=$(<"$dir/epmd_port")
      cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
default_vhost = /
default_user = envkit
default_pass = $_SERVERS_PASSWORD
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
loopback_users = none
log.console = true
log.console.level = info
log.file = false
EOF
      [[ -z $extra ]] || printf '# from RABBITMQ_EXTRA_CONF\n%s\n' "$extra" >>"$dir/rabbitmq.conf"
      : >"$log"
      # The node's epmd, in its own group so that it is stopped with this instance only.
      epmd_pid=$(_servers_read_pid "$dir/epmd.pid")
      if [[ -z $epmd_pid ]] || ! _servers_group_alive "$epmd_pid"; then
        _servers_spawn "$dir/epmd.pid" /dev/null "$log" "$log" \
          env ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$epmd_port" || return 1
        epmd_pid=$(_servers_read_pid "$dir/epmd.pid")
        if ! _servers_await start_rabbitmq "epmd for '$name' on port $epmd_port" "$epmd_pid" 30 "$log" \
          _servers_listening "$epmd_port"; then
          _servers_stop_group start_rabbitmq "$epmd_pid" KILL 5 || true
          if ((attempt < 3)) && _servers_port_taken "$log"; then
            rm -f "$dir/epmd_port"
            continue
          fi
          return 1
        fi
      fi
      local -a envs
      mapfile -t envs < <(_servers_rabbitmq_env "$dir")
      # rabbitmqctl_for as a program, for `timeout` and for commands other than bash.
      {
        printf '#!/bin/bash\n# rabbitmqctl for the harness RabbitMQ %q: its private HOME, epmd and node.\n' "$name"
        printf 'exec env'
        printf ' %q' "${envs[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -n envkit@localhost
        printf ' "$@"\n'
      } >"$dir/rabbitmqctl"
      chmod 755 "$dir/rabbitmqctl"
      # From its own directory: an Erlang crash dump (MnesiaCore.*, erl_crash.dump) lands in
      # the working directory, which must not be the caller's checkout.
      _servers_spawn "$dir/pid" /dev/null "$log" "$log" \
        env -C "$dir" "${envs[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server || return 1
      pid=$(_servers_read_pid "$dir/pid")
      if _servers_await start_rabbitmq "rabbitmq-server '$name' on port $port" "$pid" "$(_servers_timeout 180)" "$log" \
        _servers_rabbitmq_ready "$port" 2>"$dir/start.err"; then
        started=1
        break
      fi
      _servers_stop_group start_rabbitmq "$pid" KILL 5 || true
      if ((attempt < 3)) && _servers_port_taken "$log"; then
        rm -f "$dir/port" "$dir/dist_port"
        continue
      fi
      cat "$dir/start.err" >&2
      return 1
    done
    ((started)) || return 1
  fi
  export "${p}_HOST=127.0.0.1"
  export "${p}_PORT=$port"
  export "${p}_USER=envkit"
  export "${p}_PASSWORD=$_SERVERS_PASSWORD"
  export "${p}_URL=amqp://envkit@127.0.0.1:$port/%2f"
  export "${p}_CTL=$dir/rabbitmqctl"
}

rabbitmqctl_for() {
  local name
  name=$(_servers_name_or_default rabbitmq rabbitmq "${1:-}")
  if [[ $name == "${1:-}" ]]; then shift; fi
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/rabbitmq.$name
  if [[ ! -s $dir/port ]]; then
    echo "rabbitmqctl_for: error: no RabbitMQ named '$name' was started" >&2
    return 1
  fi
  _servers_rabbitmq_run "$dir" /usr/lib/rabbitmq/bin/rabbitmqctl -n envkit@localhost "$@"
}

stop_rabbitmq() {
  local name=${1:-rabbitmq}
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/rabbitmq.$name status=0
  _servers_stop_group stop_rabbitmq "$(_servers_read_pid "$dir/pid")" TERM || status=1
  _servers_stop_group stop_rabbitmq "$(_servers_read_pid "$dir/epmd.pid")" TERM 5 || status=1
  return "$status"
}

# --- nginx stream proxy -----------------------------------------------------------------

start_nginx_stream() {
  local name backend
  case $# in
    1) name=nginx backend=$1 ;;
    2) name=$1 backend=$2 ;;
    *)
      echo "start_nginx_stream: error: usage: start_nginx_stream [NAME] HOST:PORT|unix:/path" >&2
      return 1
      ;;
  esac
  _servers_check_name start_nginx_stream "$name" || return 1
  if [[ ! $backend =~ ^unix:/.+$ && ! $backend =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]]; then
    echo "start_nginx_stream: error: backend '$backend' is not HOST:PORT or unix:/path" >&2
    return 1
  fi
  servers_init || return 1
  local dir=$ENVKIT_SERVERS_DIR/nginx.$name
  if [[ -s $dir/backend && $(<"$dir/backend") != "$backend" ]] &&
    _servers_group_alive "$(_servers_read_pid "$dir/pid")"; then
    echo "start_nginx_stream: error: nginx '$name' already runs in front of $(<"$dir/backend"), not $backend" >&2
    return 1
  fi
  mkdir -p "$dir/logs" "$dir/temp" || return 1
  printf '%s\n' "$backend" >"$dir/backend"
  _servers_nginx_launch start_nginx_stream "$name" _servers_nginx_stream_conf "$backend"
}

_servers_nginx_stream_conf() {
  local port=$1 backend=$2
  cat <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
stream {
  server {
    listen 127.0.0.1:$port;
    proxy_pass $backend;
    proxy_connect_timeout 5s;
    # The default 10 minutes of idleness would cut long dumps through the tunnel.
    proxy_timeout 1h;
  }
}
EOF
}

# start_nginx_https [NAME] CERT KEY HOST:PORT...: HTTPS on 127.0.0.1 with CERT (the chain,
# leaf first) and KEY, round robin over the HTTP backends, as a load balancer in front of a
# target group: a backend that refuses or answers 502/503/504 is skipped for that request
# and rested for 2 s (nginx's passive health check). Exports <P>_HOST and <P>_PORT.
start_nginx_https() {
  local name=nginx
  if (($# >= 4)) && [[ $1 != *:* && ! -e $1 ]]; then
    name=$1
    shift
  fi
  if (($# < 3)); then
    echo "start_nginx_https: error: usage: start_nginx_https [NAME] CERT KEY HOST:PORT..." >&2
    return 1
  fi
  _servers_check_name start_nginx_https "$name" || return 1
  local cert=$1 key=$2 backend
  shift 2
  for backend in "$@"; do
    if [[ ! $backend =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]]; then
      echo "start_nginx_https: error: backend '$backend' is not HOST:PORT" >&2
      return 1
    fi
  done
  if [[ ! -r $cert || ! -r $key ]]; then
    echo "start_nginx_https: error: cannot read the certificate $cert or the key $key" >&2
    return 1
  fi
  servers_init || return 1
  local dir=$ENVKIT_SERVERS_DIR/nginx.$name
  mkdir -p "$dir/logs" "$dir/temp" || return 1
  printf '%s\n' "$*" >"$dir/backend"
  _servers_nginx_launch start_nginx_https "$name" _servers_nginx_https_conf "$dir" "$cert" "$key" "$@"
}

_servers_nginx_https_conf() {
  local port=$1 dir=$2 cert=$3 key=$4 backend
  shift 4
  echo "http {"
  echo "  access_log off;"
  # Under the prefix: the compiled-in temp paths are under /var/lib/nginx.
  echo "  client_body_temp_path $dir/temp/body; proxy_temp_path $dir/temp/proxy;"
  echo "  fastcgi_temp_path $dir/temp/fastcgi; uwsgi_temp_path $dir/temp/uwsgi; scgi_temp_path $dir/temp/scgi;"
  echo "  upstream group {"
  for backend in "$@"; do echo "    server $backend max_fails=1 fail_timeout=2s;"; done
  echo "  }"
  cat <<EOF
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://group;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
EOF
}

# Starts nginx NAME (or, when it runs, waits until it listens) with the config that
# `CONF_FN PORT ARGS...` prints below the common top (user, pid, error log, events); a
# load_module line it prints goes first, where nginx wants it. Exports <P>_HOST and <P>_PORT.
_servers_nginx_launch() {
  local caller=$1 name=$2 conf_fn=$3
  shift 3
  local p dir
  p=$(_servers_prefix "$name")
  dir=$ENVKIT_SERVERS_DIR/nginx.$name
  local log=$dir/server.log pid port
  pid=$(_servers_read_pid "$dir/pid")
  if [[ -n $pid ]] && _servers_group_alive "$pid"; then
    port=$(<"$dir/port")
    _servers_await "$caller" "nginx '$name'" "$pid" "$(_servers_timeout 30)" "$log" \
      _servers_listening "$port" || return 1
  else
    local attempt started=0 conf
    for attempt in 1 2 3; do
      port=$(_servers_port_for "$dir/port") || return 1
      conf=$("$conf_fn" "$port" "$@")
      {
        grep '^load_module' <<<"$conf" || true
        cat <<EOF
# Workers would otherwise drop to nobody, who cannot reach a socket in a 0700 temp dir.
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log stderr notice;
events { worker_connections 1024; }
EOF
        grep -v '^load_module' <<<"$conf"
      } >"$dir/nginx.conf"
      : >"$log"
      _servers_spawn "$dir/pid" /dev/null "$log" "$log" \
        nginx -p "$dir/" -c "$dir/nginx.conf" -e stderr -g 'daemon off;' || return 1
      pid=$(_servers_read_pid "$dir/pid")
      # Listening is all that can be checked without opening a backend connection.
      local settled=0
      _servers_settle "$caller" "nginx '$name' on port $port" "$pid" "$(_servers_timeout 30)" "$log" "$dir" "$attempt" \
        _servers_listening "$port" || settled=$?
      case $settled in
        0) started=1; break ;;
        2) continue ;;
        *) return 1 ;;
      esac
    done
    ((started)) || return 1
  fi
  export "${p}_HOST=127.0.0.1"
  export "${p}_PORT=$port"
}

stop_nginx() {
  local name=${1:-nginx}
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/nginx.$name
  # SIGTERM, not the graceful SIGQUIT: that would wait up to proxy_timeout for open tunnels.
  _servers_stop_group stop_nginx "$(_servers_read_pid "$dir/pid")" TERM
}

# --- Kafka (librdkafka mock cluster) ----------------------------------------------------

_servers_kafka_mock_bin() {
  if [[ -n ${ENVKIT_BUILD_DIR:-} && -x $ENVKIT_BUILD_DIR/bin/envkit-kafka-mock ]]; then
    printf '%s\n' "$ENVKIT_BUILD_DIR/bin/envkit-kafka-mock"
  else
    command -v envkit-kafka-mock
  fi
}

_servers_kafka_bootstrap_ready() {
  local file=$1
  [[ -s $file ]] && [[ $(tail -c 1 "$file") == "" ]]
}

start_kafka_mock() {
  local name=kafka brokers=3
  if [[ $# -gt 0 && ! ${1:-} =~ ^[0-9]+$ ]]; then
    name=$1
    shift
  fi
  if [[ $# -gt 0 && ${1:-} =~ ^[0-9]+$ ]]; then
    brokers=$1
    shift
  fi
  _servers_check_name start_kafka_mock "$name" || return 1
  servers_init || return 1
  local bin
  if ! bin=$(_servers_kafka_mock_bin); then
    echo "start_kafka_mock: error: envkit-kafka-mock not found in \$ENVKIT_BUILD_DIR/bin or on PATH (build it: ninja -C BUILD envkit-kafka-mock)" >&2
    return 1
  fi
  local p dir
  p=$(_servers_prefix "$name")
  dir=$ENVKIT_SERVERS_DIR/kafka.$name
  local log=$dir/server.log
  mkdir -p "$dir" || return 1

  local pid
  pid=$(_servers_read_pid "$dir/pid")
  if [[ -z $pid ]] || ! _servers_group_alive "$pid"; then
    local -a args=(--brokers "$brokers")
    local topic
    for topic in "$@"; do
      args+=(--topic "$topic")
    done
    # Its stdin is a FIFO it holds open for writing itself, so EOF never comes: it runs
    # until stopped.
    rm -f "$dir/stdin" "$dir/bootstrap"
    mkfifo "$dir/stdin" || return 1
    : >"$log"
    _servers_spawn "$dir/pid" "$dir/stdin" "$dir/bootstrap" "$log" "$bin" "${args[@]}" || return 1
    pid=$(_servers_read_pid "$dir/pid")
    _servers_await start_kafka_mock "envkit-kafka-mock '$name'" "$pid" "$(_servers_timeout 30)" "$log" \
      _servers_kafka_bootstrap_ready "$dir/bootstrap" || {
      _servers_stop_group start_kafka_mock "$pid" KILL 5 || true
      return 1
    }
  elif ! _servers_await start_kafka_mock "envkit-kafka-mock '$name'" "$pid" "$(_servers_timeout 30)" "$log" \
    _servers_kafka_bootstrap_ready "$dir/bootstrap"; then
    return 1
  fi
  local bootstrap
  bootstrap=$(head -n 1 "$dir/bootstrap")
  export "${p}_BOOTSTRAP=$bootstrap"
  export "${p}_URL=kafka://$bootstrap"
}

stop_kafka_mock() {
  local name=${1:-kafka}
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/kafka.$name
  _servers_stop_group stop_kafka_mock "$(_servers_read_pid "$dir/pid")" TERM
}

# --- Hostile and fixture TCP servers (tests/lib/hostile_server.py) ------------------------

# start_hostile_server NAME MODE [--cert FILE --key FILE]: a server that misbehaves on purpose
# (silent, garbage, close-mid-handshake, huge, slow-drip) or serves small HTTP (http), over
# TLS with --cert/--key. Exports <P>_PORT and <P>_HOST. A NAME started again restarts it
# (same port when free), so a test can switch a name to another mode or certificate.
start_hostile_server() {
  if (($# < 2)); then
    echo "start_hostile_server: error: usage: start_hostile_server NAME MODE [--cert FILE --key FILE]" >&2
    return 1
  fi
  local name=$1 mode=$2
  shift 2
  _servers_check_name start_hostile_server "$name" || return 1
  servers_init || return 1
  local p dir pid port=0
  p=$(_servers_prefix "$name")
  dir=$ENVKIT_SERVERS_DIR/hostile.$name
  mkdir -p "$dir" || return 1
  pid=$(_servers_read_pid "$dir/pid")
  if [[ -n $pid ]] && _servers_group_alive "$pid"; then
    _servers_stop_group start_hostile_server "$pid" TERM 5 || return 1
  fi
  if [[ -s $dir/port ]] && ! _servers_listening "$(<"$dir/port")"; then
    port=$(<"$dir/port")
  fi
  rm -f "$dir/port.now"
  _servers_spawn "$dir/pid" /dev/null "$dir/server.log" "$dir/server.log" \
    "${ENVKIT_PYTHON:-python3}" "$ENVKIT_SOURCE_DIR/tests/lib/hostile_server.py" --mode "$mode" --port "$port" \
    --port-file "$dir/port.now" "$@" || return 1
  pid=$(_servers_read_pid "$dir/pid")
  _servers_await start_hostile_server "hostile server '$name'" "$pid" "$(_servers_timeout 20)" \
    "$dir/server.log" test -s "$dir/port.now" || return 1
  port=$(<"$dir/port.now")
  printf '%s\n' "$port" >"$dir/port"
  export "${p}_HOST=127.0.0.1"
  export "${p}_PORT=$port"
}

stop_hostile_server() {
  local name=$1
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/hostile.$name
  _servers_stop_group stop_hostile_server "$(_servers_read_pid "$dir/pid")" TERM 5
}

# --- MongoDB (tests/lib/mongo_server.py, the project's wire-protocol test server) -------

# Debian's python3 has python3-bson; a python3 earlier on PATH (pyenv) may not.
_servers_mongo_python() {
  if [[ -n ${ENVKIT_MONGO_PYTHON:-} ]]; then
    printf '%s\n' "$ENVKIT_MONGO_PYTHON"
  elif [[ -x /usr/bin/python3 ]]; then
    printf '%s\n' /usr/bin/python3
  else
    command -v python3
  fi
}

_servers_mongo_script() {
  printf '%s\n' "${ENVKIT_SOURCE_DIR:-${BASH_SOURCE[0]%/*}/../..}/tests/lib/mongo_server.py"
}

# Sets the caller's dir, log, python and script for server NAME (its locals: bash's dynamic
# scope), after checking that python has bson.
_servers_mongo_prepare() {
  local func=$1 name=$2
  servers_init || return 1
  dir=$ENVKIT_SERVERS_DIR/mongo.$name
  log=$dir/server.log
  python=$(_servers_mongo_python) || return 1
  script=$(_servers_mongo_script)
  if ! "$python" -c 'import bson' 2>/dev/null; then
    echo "$func: error: $python cannot import bson (install python3-bson, or set ENVKIT_MONGO_PYTHON)" >&2
    return 1
  fi
  mkdir -p "$dir"
}

_servers_mongo_ready() {
  local python=$1 script=$2 port=$3
  _servers_listening "$port" && "$python" "$script" --probe "127.0.0.1:$port"
}

# start_mongo [NAME] [--replica-set RS] [--state primary|secondary|startup] [--member H:P]...
#             [--primary H:P] [--no-snapshot]
start_mongo() {
  local name=mongo
  if [[ $# -gt 0 && ${1:-} != --* ]]; then
    name=$1
    shift
  fi
  _servers_check_name start_mongo "$name" || return 1
  local p rs='' arg
  p=$(_servers_prefix "$name")
  local -a args=()
  while (($#)); do
    arg=$1
    case $arg in
      --replica-set | --state | --member | --primary)
        if (($# < 2)); then
          echo "start_mongo: error: $arg needs a value" >&2
          return 1
        fi
        [[ $arg == --replica-set ]] && rs=$2
        args+=("$arg" "$2")
        shift 2
        ;;
      --no-snapshot) args+=("$arg"); shift ;;
      *)
        echo "start_mongo: error: unknown option '$arg'" >&2
        return 1
        ;;
    esac
  done

  # A real mongod given by the caller: every test runs against it instead.
  local real_var=ENVKIT_MONGO_URL_$p
  local real=${!real_var:-${ENVKIT_MONGO_URL:-}}
  if [[ -n $real ]]; then
    local hostport=${real#mongodb://}
    hostport=${hostport#*@}
    hostport=${hostport%%[/?,]*}
    export "${p}_HOST=${hostport%:*}"
    export "${p}_PORT=${hostport##*:}"
    export "${p}_URL=$real"
    export "${p}_LOG="
    export "${p}_TEST_SERVER=0"
    return 0
  fi

  local dir python script log
  _servers_mongo_prepare start_mongo "$name" || return 1

  local pid port
  pid=$(_servers_read_pid "$dir/pid")
  if [[ -n $pid ]] && _servers_group_alive "$pid"; then
    port=$(<"$dir/port")
    rs=$(<"$dir/replica-set")
    _servers_await start_mongo "mongo_server.py '$name'" "$pid" "$(_servers_timeout 30)" "$log" \
      _servers_mongo_ready "$python" "$script" "$port" || return 1
  else
    local attempt started=0
    printf '%s\n' "$rs" >"$dir/replica-set"
    for attempt in 1 2 3; do
      port=$(_servers_port_for "$dir/port") || return 1
      : >"$log"
      _servers_spawn "$dir/pid" /dev/null "$log" "$log" "$python" "$script" --host 127.0.0.1 \
        --port "$port" --log "$dir/requests.log" "${args[@]}" || return 1
      pid=$(_servers_read_pid "$dir/pid")
      local settled=0
      _servers_settle start_mongo "mongo_server.py '$name' on port $port" "$pid" "$(_servers_timeout 30)" "$log" "$dir" "$attempt" \
        _servers_mongo_ready "$python" "$script" "$port" || settled=$?
      case $settled in
        0) started=1; break ;;
        2) continue ;;
        *) return 1 ;;
      esac
    done
    ((started)) || return 1
  fi
  export "${p}_HOST=127.0.0.1"
  export "${p}_PORT=$port"
  if [[ -n $rs ]]; then
    export "${p}_URL=mongodb://127.0.0.1:$port/?replicaSet=$rs"
  else
    export "${p}_URL=mongodb://127.0.0.1:$port"
  fi
  export "${p}_LOG=$dir/requests.log"
  export "${p}_TEST_SERVER=1"
}

stop_mongo() {
  local name=${1:-mongo}
  local dir=${ENVKIT_SERVERS_DIR:-/nonexistent}/mongo.$name
  _servers_stop_group stop_mongo "$(_servers_read_pid "$dir/pid")" TERM
}

# mongo_command [NAME] DB JSON: runs one command on NAME's server through pymongo and prints
# the reply as canonical Extended JSON (for state switches and checks from Bats).
mongo_command() {
  local name
  name=$(_servers_name_or_default mongo mongo "${1:-}")
  if [[ $name == "${1:-}" ]]; then shift; fi
  local p url_var
  p=$(_servers_prefix "$name")
  url_var=${p}_URL
  if [[ -z ${!url_var:-} ]]; then
    echo "mongo_command: error: $url_var is not set (start_mongo $name first)" >&2
    return 1
  fi
  "$(_servers_mongo_python)" - "${!url_var}" "$@" <<'PY'
import sys
import pymongo
from bson import json_util
from bson.son import SON
url, db, command = sys.argv[1], sys.argv[2], sys.argv[3]
opts = json_util.JSONOptions(json_mode=json_util.JSONMode.CANONICAL, document_class=SON)
client = pymongo.MongoClient(url, directConnection=True, serverSelectionTimeoutMS=5000,
                             connectTimeoutMS=3000, socketTimeoutMS=10000)
try:
    reply = client[db].command(json_util.loads(command, json_options=opts),
                               read_preference=pymongo.ReadPreference.PRIMARY_PREFERRED)
except pymongo.errors.PyMongoError as e:
    print("mongo_command: error: %s" % e, file=sys.stderr)
    sys.exit(1)
print(json_util.dumps(reply, json_options=opts))
PY
}

# --- MongoDB replica sets (mongo_server.py --rs-ports: one process, one port per member) --
#
# For tests of failover (shard-route's rsA/rsB/db3, tests/bats/mongo-rs.bats):
#   start_mongo_rs rsA           -> RSA_URL=mongodb://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/?replicaSet=rsA
#   stop_mongo_rs_primary rsA    -> the old primary's H:P, once another member is primary
#   restart_mongo_rs_member rsA  -> every stopped member back, caught up
#   stop_mongo rsA               -> the whole set gone
# With ENVKIT_TEST_MONGO_URI_RSA set, start_mongo_rs rsA exports that URI instead and the
# controls return 2 (a test cannot stop a real set's primary: it says so and skips).

_servers_mongo_rs_ready() {
  local python=$1 script=$2 hosts=$3 port
  for port in ${hosts//,/ }; do
    _servers_listening "${port##*:}" || return 1
  done
  "$python" "$script" --control "$hosts" --wait primary --timeout 2
}

# N distinct free ports, or the ones in PORTFILE when none of them is taken.
_servers_mongo_rs_ports() {
  local portfile=$1 n=$2 port i
  local -a ports=()
  if [[ -s $portfile ]]; then
    read -r -a ports <"$portfile"
    for port in "${ports[@]}"; do
      if _servers_listening "$port"; then ports=(); break; fi
    done
    if ((${#ports[@]} == n)); then
      printf '%s\n' "${ports[*]}"
      return 0
    fi
  fi
  ports=()
  for ((i = 0; i < 100 && ${#ports[@]} < n; i++)); do
    port=$(free_port) || return 1
    [[ " ${ports[*]} " == *" $port "* ]] || ports+=("$port")
  done
  ((${#ports[@]} == n)) || { echo "start_mongo_rs: error: no $n distinct free ports" >&2; return 1; }
  printf '%s\n' "${ports[*]}" >"$portfile"
  printf '%s\n' "${ports[*]}"
}

start_mongo_rs() {
  local name=${1:-} members=3
  _servers_check_name start_mongo_rs "$name" || return 1
  shift
  if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    members=$1
    shift
  fi
  if ((members < 1 || members > 7)); then
    echo "start_mongo_rs: error: MEMBERS must be 1..7, not $members" >&2
    return 1
  fi
  local -a args=()
  while (($#)); do
    case $1 in
      --election-delay-ms | --repl-delay-ms)
        if [[ ! ${2:-} =~ ^[0-9]+$ ]]; then
          echo "start_mongo_rs: error: $1 needs a number of milliseconds" >&2
          return 1
        fi
        args+=("$1" "$2")
        shift 2
        ;;
      --unsafe-early-majority-ack) args+=("$1"); shift ;;
      *)
        echo "start_mongo_rs: error: unknown option '$1'" >&2
        return 1
        ;;
    esac
  done
  local p
  p=$(_servers_prefix "$name")

  # A real replica set given by the caller: the tests run against it instead.
  local real_var=ENVKIT_TEST_MONGO_URI_$p
  if [[ -n ${!real_var:-} ]]; then
    local hosts=${!real_var#mongodb://}
    hosts=${hosts#*@}
    hosts=${hosts%%[/?]*}
    export "${p}_URL=${!real_var}"
    export "${p}_HOSTS=$hosts"
    export "${p}_PORTS="
    export "${p}_HOST=${hosts%%:*}"
    hosts=${hosts%%,*}
    export "${p}_PORT=${hosts##*:}"
    export "${p}_LOG="
    export "${p}_TEST_SERVER=0"
    return 0
  fi

  local dir python script log
  _servers_mongo_prepare start_mongo_rs "$name" || return 1

  local pid ports hosts port attempt started=0 settled
  pid=$(_servers_read_pid "$dir/pid")
  if [[ -n $pid ]] && _servers_group_alive "$pid"; then
    ports=$(<"$dir/ports")
    hosts=127.0.0.1:${ports// /,127.0.0.1:}
    _servers_await start_mongo_rs "replica set '$name'" "$pid" "$(_servers_timeout 30)" "$log" \
      _servers_mongo_rs_ready "$python" "$script" "$hosts" || return 1
  else
    for attempt in 1 2 3; do
      ports=$(_servers_mongo_rs_ports "$dir/ports" "$members") || return 1
      hosts=127.0.0.1:${ports// /,127.0.0.1:}
      : >"$log"
      _servers_spawn "$dir/pid" /dev/null "$log" "$log" "$python" "$script" --host 127.0.0.1 \
        --replica-set "$name" --rs-ports "${ports// /,}" --log "$dir/requests.log" "${args[@]}" || return 1
      pid=$(_servers_read_pid "$dir/pid")
      settled=0
      _servers_settle start_mongo_rs "replica set '$name' on ports $ports" "$pid" "$(_servers_timeout 30)" "$log" "$dir" "$attempt" \
        _servers_mongo_rs_ready "$python" "$script" "$hosts" || settled=$?
      case $settled in
        0) started=1; break ;;
        2) rm -f "$dir/ports"; continue ;;
        *) return 1 ;;
      esac
    done
    ((started)) || return 1
  fi
  export "${p}_URL=mongodb://${hosts}/?replicaSet=$name"
  export "${p}_HOSTS=$hosts"
  export "${p}_PORTS=$ports"
  export "${p}_HOST=127.0.0.1"
  export "${p}_PORT=${ports%% *}"
  export "${p}_LOG=$dir/requests.log"
  export "${p}_TEST_SERVER=1"
}

mongo_rs_control() {
  local name=${1:-}
  shift
  local p hosts_var test_var
  p=$(_servers_prefix "$name")
  hosts_var=${p}_HOSTS test_var=${p}_TEST_SERVER
  if [[ -z ${!hosts_var:-} ]]; then
    echo "mongo_rs_control: error: ${p}_HOSTS is not set (start_mongo_rs $name first)" >&2
    return 1
  fi
  if [[ ${!test_var:-} != 1 ]]; then
    echo "mongo_rs_control: error: $name is a real replica set (ENVKIT_TEST_MONGO_URI_$p): the test server's controls do not apply" >&2
    return 2
  fi
  local -a opts=()
  while [[ ${1:-} == --wait || ${1:-} == --field ]]; do
    opts+=("$1" "${2:-}")
    shift 2
  done
  "$(_servers_mongo_python)" "$(_servers_mongo_script)" --control "${!hosts_var}" \
    ${1:+--action "$1"} --timeout "$(_servers_timeout 30)" "${opts[@]}"
}

stop_mongo_rs_primary() {
  local name=${1:-} after='' when=beforeReply
  shift
  while (($#)); do
    case $1 in
      --after-writes) after=${2:-}; shift 2 ;;
      --before-replication) when=beforeReplication; shift ;;
      *)
        echo "stop_mongo_rs_primary: error: unknown option '$1'" >&2
        return 1
        ;;
    esac
  done
  if [[ -z $after ]]; then
    mongo_rs_control "$name" --wait primary --field primary '{"envkitRs": "stopPrimary"}'
  elif [[ $after =~ ^[1-9][0-9]*$ ]]; then
    mongo_rs_control "$name" --field primary \
      "{\"envkitRs\": \"stopPrimary\", \"afterWrites\": $after, \"when\": \"$when\"}"
  else
    echo "stop_mongo_rs_primary: error: --after-writes needs a positive count" >&2
    return 1
  fi
}

restart_mongo_rs_member() {
  local name=${1:-} host=${2:-}
  mongo_rs_control "$name" --wait caught-up --field started \
    "{\"envkitRs\": \"start\"${host:+, \"host\": \"$host\"}}"
}

# --- all --------------------------------------------------------------------------------

stop_all_servers() {
  [[ -n ${ENVKIT_SERVERS_DIR:-} && -d $ENVKIT_SERVERS_DIR ]] || return 0
  local status=0 dir base kind name
  local -a jobs=()
  # Proxies first, so their backends do not see a flood of broken tunnels; the backends
  # then all at once, since a RabbitMQ shutdown alone takes seconds.
  for dir in "$ENVKIT_SERVERS_DIR"/nginx.*/; do
    [[ -d $dir ]] || continue
    base=${dir%/}
    stop_nginx "${base#*/nginx.}" || status=1
  done
  for kind in kafka redis rabbitmq mariadb mongo hostile; do
    for dir in "$ENVKIT_SERVERS_DIR/$kind".*/; do
      [[ -d $dir ]] || continue
      base=${dir%/}
      base=${base##*/}
      name=${base#*.}
      case $kind in
        kafka) stop_kafka_mock "$name" & ;;
        redis) stop_redis "$name" & ;;
        rabbitmq) stop_rabbitmq "$name" & ;;
        mariadb) stop_mariadb "$name" & ;;
        mongo) stop_mongo "$name" & ;;
        hostile) stop_hostile_server "$name" & ;;
      esac
      jobs+=("$!")
    done
  done
  local job
  for job in "${jobs[@]}"; do
    wait "$job" || status=1
  done
  # Whatever the stops said, the proof is that no process group started here is alive.
  local pidfile pid
  for pidfile in "$ENVKIT_SERVERS_DIR"/*.*/pid "$ENVKIT_SERVERS_DIR"/*.*/epmd.pid; do
    [[ -s $pidfile ]] || continue
    pid=$(<"$pidfile")
    if _servers_group_alive "$pid"; then
      echo "stop_all_servers: error: process group $pid ($pidfile) is still running" >&2
      status=1
    fi
  done
  if [[ -s $ENVKIT_SERVERS_DIR/.short ]]; then
    rm -f "$(<"$ENVKIT_SERVERS_DIR/.short")" "$ENVKIT_SERVERS_DIR/.short"
  fi
  if ((status == 0)) && [[ -e $ENVKIT_SERVERS_DIR/.remove-when-stopped && -z ${ENVKIT_KEEP_SERVERS_DIR:-} ]]; then
    rm -rf "$ENVKIT_SERVERS_DIR"
  fi
  return "$status"
}
