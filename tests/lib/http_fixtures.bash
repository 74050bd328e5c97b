# Starts and stops the HTTP fixture servers (Open-Meteo stand-in, HTTP sink) for the Bats tests.
#
#   start_openmeteo_server [NAME] [ARGS...]  NAME defaults to openmeteo; exports <NAME>_URL
#                                            (http://127.0.0.1:PORT/v1/forecast), _PORT, _HOST,
#                                            _BASE_URL, _PID, _LOG. ARGS go to openmeteo_server.py
#                                            (--mode, --now, --fixtures DIR, ...).
#   start_http_receiver [NAME] [ARGS...]     NAME defaults to receiver; exports <NAME>_URL
#                                            (http://127.0.0.1:PORT/ingest), _PORT, _HOST,
#                                            _BASE_URL, _OUT (the records file), _PID, _LOG.
#                                            ARGS go to http_receiver.py (--mode, --status, ...).
#   stop_http_fixture NAME                   stop one; its port and records file are kept, so
#                                            starting NAME again brings it back at the same URL
#                                            (a sink that was down and came back)
#   stop_http_fixtures                       stop all, and fail if any process is left
#   http_fixture_stats NAME                  print GET /_stats (JSON)
#   http_fixture_reset NAME...               zero the counts and fault counters, and empty
#                                            a receiver's records file
#   http_fixture_mode NAME MODE              set the fault mode of every later request
#
# NAME is the first argument when it does not start with '-'; <NAME> is NAME upper-cased
# with other characters as '_' (receiver -> RECEIVER_URL, sink-2 -> SINK_2_URL). A start
# waits at most ENVKIT_HTTP_FIXTURE_START_TIMEOUT seconds (20) for the server to listen.
#
# Needs only bash, coreutils, curl and python3 (ENVKIT_PYTHON overrides which one), not
# servers.bash. State lives in files under ${ENVKIT_SERVERS_DIR:-$BATS_FILE_TMPDIR}/
# http-fixtures/NAME/ because Bats runs setup_file, each test and teardown_file in different
# processes; call the start functions directly, not through `run`, whose subshell would lose
# the exports. Each server binds port 0 (the kernel picks a free port, no race) and writes
# the port to a file once it listens; it writes its own pid, so the pid is right whether or
# not setsid forked.

_HTTP_FIXTURES_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# python3 resolved to the interpreter itself, once per Bats file (exported, so each test's
# copy of this file finds it): a version manager's shim on PATH (pyenv) costs ~1 s per call
# on a loaded 2-core machine, the interpreter 0.05 s.
if [[ -z ${ENVKIT_PYTHON:-} ]]; then
  ENVKIT_PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || true
  [[ -n $ENVKIT_PYTHON ]] || ENVKIT_PYTHON=python3
  export ENVKIT_PYTHON
fi

_http_fixtures_now_ms() {
  local t=${EPOCHREALTIME/./}
  printf '%s\n' $((t / 1000))
}

# The directories that may hold this helper's state, most preferred first: beside the other
# servers, in the Bats file's temp dir, or (outside Bats) one of its own. A name is looked up
# in all of them, so a servers_init between a start and a stop cannot hide a running server.
_http_fixtures_roots() {
  local dir seen=' '
  for dir in ${ENVKIT_SERVERS_DIR:+"$ENVKIT_SERVERS_DIR/http-fixtures"} \
    ${BATS_FILE_TMPDIR:+"$BATS_FILE_TMPDIR/http-fixtures"} \
    ${ENVKIT_HTTP_FIXTURES_DIR:+"$ENVKIT_HTTP_FIXTURES_DIR"}; do
    [[ $seen == *" $dir "* ]] && continue
    seen+="$dir "
    printf '%s\n' "$dir"
  done
}

# The state directory of NAME if it was ever started, else nothing (and status 1).
_http_fixtures_find() {
  local name=$1 root
  while IFS= read -r root; do
    if [[ -s $root/$name/kind ]]; then
      printf '%s\n' "$root/$name"
      return 0
    fi
  done < <(_http_fixtures_roots)
  return 1
}

# Sets _http_fixtures_root to where new state goes. Not for $(...): outside Bats it makes and
# exports a directory, which must outlive the call.
_http_fixtures_pick_root() {
  if [[ -n ${ENVKIT_SERVERS_DIR:-} ]]; then
    _http_fixtures_root=$ENVKIT_SERVERS_DIR/http-fixtures
  elif [[ -n ${BATS_FILE_TMPDIR:-} ]]; then
    _http_fixtures_root=$BATS_FILE_TMPDIR/http-fixtures
  else
    if [[ -z ${ENVKIT_HTTP_FIXTURES_DIR:-} ]]; then
      ENVKIT_HTTP_FIXTURES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/envkit-http-fixtures.XXXXXX") || {
        echo "http_fixtures: error: cannot create a state directory under ${TMPDIR:-/tmp}" >&2
        return 1
      }
      export ENVKIT_HTTP_FIXTURES_DIR
    fi
    _http_fixtures_root=$ENVKIT_HTTP_FIXTURES_DIR
  fi
  mkdir -p "$_http_fixtures_root" || {
    echo "http_fixtures: error: cannot create $_http_fixtures_root" >&2
    return 1
  }
}

_http_fixtures_prefix() {
  local p=${1^^}
  printf '%s\n' "${p//[^A-Z0-9_]/_}"
}

# Alive means running: on these machines PID 1 reaps orphans lazily, and a zombie waiting
# for it would still pass `kill -0`.
_http_fixtures_alive() {
  local pid=$1 stat
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
  { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# Any live process in process group PGID (a server runs as its own group leader).
_http_fixtures_group_alive() {
  local pgid=$1 file stat state pgrp
  [[ $pgid =~ ^[0-9]+$ ]] || return 1
  _http_fixtures_alive "$pgid" && return 0
  for file in /proc/[0-9]*/stat; do
    # A process may end between the glob and the read.
    { read -r stat <"$file"; } 2>/dev/null || continue
    stat=${stat##*) }
    read -r state _ pgrp _ <<<"$stat"
    if [[ $pgrp == "$pgid" && $state != Z && $state != X ]]; then
      return 0
    fi
  done
  return 1
}

# The pid in FILE, or nothing; never fails, so callers under `set -e` (Bats) go on.
_http_fixtures_read_pid() {
  local pid=''
  [[ -s $1 ]] && pid=$(<"$1")
  printf '%s\n' "$pid"
}

_http_fixtures_fail() {
  local func=$1 message=$2 log=${3:-}
  echo "$func: error: $message" >&2
  if [[ -n $log && -s $log ]]; then
    echo "$func: last lines of $log:" >&2
    tail -n 20 "$log" | sed 's/^/  | /' >&2
  fi
  return 1
}

# _http_fixtures_start FUNC KIND DEFAULT_NAME SCRIPT [NAME] [ARGS...]
_http_fixtures_start() {
  local func=$1 kind=$2 name=$3 script=$4
  shift 4
  if [[ $# -gt 0 && ${1:-} != -* ]]; then
    name=$1
    shift
  fi
  if [[ ! $name =~ ^[A-Za-z][A-Za-z0-9_-]{0,39}$ ]]; then
    echo "$func: error: bad server name '$name' (letters, digits, '-' and '_', starting with a letter)" >&2
    return 1
  fi
  if ! command -v "$ENVKIT_PYTHON" >/dev/null || ! command -v curl >/dev/null; then
    echo "$func: error: python3 ($ENVKIT_PYTHON) and curl are needed" >&2
    return 1
  fi
  local dir _http_fixtures_root
  # A name started before keeps its directory: its port and records file come back with it.
  if ! dir=$(_http_fixtures_find "$name"); then
    _http_fixtures_pick_root || return 1
    dir=$_http_fixtures_root/$name
  fi
  mkdir -p "$dir" || return 1
  if [[ -s $dir/kind && $(<"$dir/kind") != "$kind" ]]; then
    echo "$func: error: the name '$name' is already used by a fixture of kind $(<"$dir/kind")" >&2
    return 1
  fi
  printf '%s\n' "$kind" >"$dir/kind"
  local pid
  pid=$(_http_fixtures_read_pid "$dir/pid")
  if _http_fixtures_alive "$pid"; then
    echo "$func: error: '$name' is already running (pid $pid); stop_http_fixture $name first" >&2
    return 1
  fi

  local -a extra=()
  local out='' arg prev=''
  for arg in "$@"; do
    case $prev in --out) out=$arg ;; esac
    case $arg in --out=*) out=${arg#--out=} ;; esac
    prev=$arg
  done
  if [[ $kind == receiver ]]; then
    if [[ -z $out ]]; then
      out=$dir/records.jsonl
      extra+=(--out "$out")
    fi
    [[ $out == /* ]] || out=$PWD/$out
  fi
  # A restart takes the port it had, so that clients find it where it was.
  local port=0
  [[ -s $dir/port ]] && port=$(<"$dir/port")

  local log=$dir/server.log attempt deadline started=0
  for attempt in 1 2 3; do
    rm -f "$dir/pid" "$dir/port.ready"
    {
      printf -- '--- %s start (attempt %d): %s' "$(date '+%F %T')" "$attempt" "$script"
      printf ' %q' "${extra[@]}" "$@"
      printf '\n'
    } >>"$log"
    # Its own session, stdio on /dev/null and the log, fd 3 (Bats' output pipe) closed: Bats
    # and $(...) never wait on it. The server closes any other inherited descriptor itself.
    # -S: standard library only, so no site-packages to scan at start-up.
    setsid "$ENVKIT_PYTHON" -S "$_HTTP_FIXTURES_LIB_DIR/$script" --host 127.0.0.1 --port "$port" \
      --port-file "$dir/port.ready" --pid-file "$dir/pid" "${extra[@]}" "$@" \
      </dev/null >>"$log" 2>&1 3>&- &
    local spawned=$!
    # Out of the job table: a test's bare `wait` must not wait for a server to end.
    disown "$spawned" 2>/dev/null || true
    deadline=$(($(_http_fixtures_now_ms) + ${ENVKIT_HTTP_FIXTURE_START_TIMEOUT:-20} * 1000))
    while [[ ! -s $dir/port.ready ]]; do
      pid=$(_http_fixtures_read_pid "$dir/pid")
      if ! _http_fixtures_alive "$pid" && ! _http_fixtures_alive "$spawned"; then
        break
      fi
      if (($(_http_fixtures_now_ms) > deadline)); then
        break
      fi
      sleep 0.02
    done
    pid=$(_http_fixtures_read_pid "$dir/pid")
    if [[ -s $dir/port.ready ]] && _http_fixtures_alive "$pid"; then
      started=1
      break
    fi
    if _http_fixtures_alive "$pid"; then
      kill -KILL -- "-$pid" 2>/dev/null || true
      _http_fixtures_fail "$func" "$script '$name' did not listen within ${ENVKIT_HTTP_FIXTURE_START_TIMEOUT:-20} s" "$log"
      return 1
    fi
    # Only a port kept from an earlier run can be taken; wait for it a little, then give up.
    if ((port != 0)) && tail -n 3 "$log" | grep -q 'cannot listen' && ((attempt < 3)); then
      sleep 0.5
      continue
    fi
    break
  done
  if ((!started)); then
    _http_fixtures_fail "$func" "$script '$name' exited during start-up" "$log"
    return 1
  fi
  port=$(<"$dir/port.ready")
  mv -f "$dir/port.ready" "$dir/port"

  # Listening is not answering: ask it once, bounded, before handing it to a test.
  local base=http://127.0.0.1:$port
  deadline=$(($(_http_fixtures_now_ms) + 10000))
  until curl -fsS --max-time 2 -o /dev/null "$base/_stats" 2>/dev/null; do
    if ! _http_fixtures_alive "$pid" || (($(_http_fixtures_now_ms) > deadline)); then
      _http_fixtures_fail "$func" "$script '$name' on port $port does not answer GET /_stats" "$log"
      return 1
    fi
    sleep 0.05
  done

  local p
  p=$(_http_fixtures_prefix "$name")
  export "${p}_HOST=127.0.0.1" "${p}_PORT=$port" "${p}_BASE_URL=$base" "${p}_PID=$pid" "${p}_LOG=$log"
  if [[ $kind == receiver ]]; then
    export "${p}_URL=$base/ingest" "${p}_OUT=$out"
  else
    export "${p}_URL=$base/v1/forecast"
  fi
}

start_openmeteo_server() {
  _http_fixtures_start start_openmeteo_server openmeteo openmeteo openmeteo_server.py "$@"
}

start_http_receiver() {
  _http_fixtures_start start_http_receiver receiver receiver http_receiver.py "$@"
}

_http_fixtures_dir_of() {
  local func=$1 name=$2
  if [[ -z $name ]] || ! _http_fixtures_find "$name"; then
    echo "$func: error: no HTTP fixture named '$name' was started" >&2
    return 1
  fi
}

stop_http_fixture() {
  local name=${1:-} dir pid deadline
  dir=$(_http_fixtures_dir_of stop_http_fixture "$name") || return 1
  pid=$(_http_fixtures_read_pid "$dir/pid")
  [[ -n $pid ]] || return 0
  if _http_fixtures_alive "$pid"; then
    # SIGTERM: the server stops serving and closes its socket and records file.
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(_http_fixtures_now_ms) + 5000))
    while _http_fixtures_alive "$pid" && (($(_http_fixtures_now_ms) <= deadline)); do
      sleep 0.02
    done
  fi
  # The whole group, not just its leader: whatever it started must be gone too.
  if _http_fixtures_group_alive "$pid"; then
    echo "stop_http_fixture: warning: '$name' (process group $pid) still running after SIGTERM; sending SIGKILL" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
    deadline=$(($(_http_fixtures_now_ms) + 5000))
    while _http_fixtures_group_alive "$pid" && (($(_http_fixtures_now_ms) <= deadline)); do
      sleep 0.05
    done
    if _http_fixtures_group_alive "$pid"; then
      echo "stop_http_fixture: error: '$name' (process group $pid) survived SIGKILL" >&2
      return 1
    fi
  fi
  rm -f "$dir/pid"
}

stop_http_fixtures() {
  local root dir status=0
  while IFS= read -r root; do
    for dir in "$root"/*/; do
      [[ -s $dir/kind ]] || continue
      dir=${dir%/}
      stop_http_fixture "${dir##*/}" || status=1
    done
  done < <(_http_fixtures_roots)
  return "$status"
}

_http_fixtures_base_of() {
  local func=$1 name=$2 dir
  dir=$(_http_fixtures_dir_of "$func" "$name") || return 1
  if [[ ! -s $dir/port ]] || ! _http_fixtures_alive "$(_http_fixtures_read_pid "$dir/pid")"; then
    echo "$func: error: HTTP fixture '$name' is not running" >&2
    return 1
  fi
  printf 'http://127.0.0.1:%s\n' "$(<"$dir/port")"
}

http_fixture_stats() {
  local base
  base=$(_http_fixtures_base_of http_fixture_stats "${1:-}") || return 1
  curl -fsS --max-time 5 "$base/_stats"
  echo
}

http_fixture_reset() {
  local name base
  local -a args=()
  for name in "${@:-}"; do
    base=$(_http_fixtures_base_of http_fixture_reset "$name") || return 1
    args+=(-o /dev/null "$base/_reset?truncate=1")
  done
  # One curl for all: a process start costs more than the requests.
  curl -fsS --max-time 5 -d '' "${args[@]}"
}

http_fixture_mode() {
  local base
  if [[ $# -ne 2 ]]; then
    echo "http_fixture_mode: error: usage: http_fixture_mode NAME MODE" >&2
    return 1
  fi
  base=$(_http_fixtures_base_of http_fixture_mode "$1") || return 1
  local reply
  reply=$(curl -sS --max-time 5 -w '\n%{http_code}' -X POST --data-binary "$2" "$base/_mode") || return 1
  if [[ ${reply##*$'\n'} != 200 ]]; then
    echo "http_fixture_mode: error: '$1' refused mode '$2': ${reply%$'\n'*}" >&2
    return 1
  fi
}
