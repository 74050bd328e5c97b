# What every environment's scenario shares: its work directory and servers, workers run in
# their own session with a pid file, bounded waits, and the verdict of each step gathered
# into one report (text on stdout, JSON with --json). Sourced by scenarios/ENV/run after it
# sets SCENARIO (the environment's name) and has parsed its options into `keep`, `workdir`
# and `json`; see scenarios/iot-weather/run for the shape of a scenario.
#
# A scenario's exit status: 0 every step passed, 1 a step failed, 64 usage, 69 a server or a
# command is missing.

# shellcheck shell=bash
scenario_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${ENVKIT_BUILD_DIR:=$scenario_root/build}"
[[ -d $ENVKIT_BUILD_DIR/bin ]] && PATH=$ENVKIT_BUILD_DIR/bin:$PATH
export ENVKIT_BUILD_DIR PATH

started=$SECONDS
say() { printf '[%3ds] %s\n' "$((SECONDS - started))" "$*" >&2; }

usage_error() {
  echo "$SCENARIO: error: $*" >&2
  echo "Try 'scenarios/$SCENARIO/run --help'" >&2
  exit 64
}

# The scenario's --help: the comment block at the top of its run script.
scenario_help() {
  sed -n '2,/^set -euo/p' "$1" | sed '$d; s/^# \{0,1\}//; /^!/d'
}

# Exits 69 naming the first of the commands that is not on PATH.
require_commands() {
  local command
  for command in "$@"; do
    if ! command -v "$command" >/dev/null; then
      echo "$SCENARIO: error: '$command' not found: run scripts/bootstrap and build first (scripts/demo does both)" >&2
      exit 69
    fi
  done
}

# Makes WORK (the --workdir, or a new directory) with logs/, pids/, secrets/, checks/ and the
# subdirectories named in the arguments, and loads the test servers' helpers
# (tests/lib/servers.bash) with the servers' directory under WORK.
scenario_workdir() {
  if [[ -z ${workdir:-} ]]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/envkit-$SCENARIO.XXXXXX")
  else
    mkdir -p "$workdir"
    WORK=$(cd "$workdir" && pwd)
  fi
  local sub
  mkdir -p "$WORK"/{logs,pids,secrets,checks}
  for sub in "$@"; do mkdir -p "$WORK/$sub"; done
  chmod 700 "$WORK/secrets"
  export WORK ENVKIT_SERVERS_DIR=$WORK/servers
  # shellcheck source=../../tests/lib/servers.bash
  source "$scenario_root/tests/lib/servers.bash"
}

# Attaches to the work directory of a --keep run (for --stop).
scenario_attach() {
  WORK=$(cd "$1" && pwd) || exit 64
  [[ -d $WORK/pids ]] || usage_error "$1 is not the directory of a --keep run"
  export WORK ENVKIT_SERVERS_DIR=$WORK/servers
  # shellcheck source=../../tests/lib/servers.bash
  source "$scenario_root/tests/lib/servers.bash"
}

# Stops every worker, then every server.
stop_everything() {
  local pidfile
  for pidfile in "$WORK"/pids/*; do
    [[ -e $pidfile ]] && stop_worker "$(basename "$pidfile")"
  done
  stop_all_servers >/dev/null 2>&1 || stop_all_servers
}

# On exit: everything stopped and removed, unless --keep.
scenario_traps() {
  trap scenario_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
scenario_cleanup() {
  local status=$?
  if ((${keep:-0})); then
    say "kept: everything is in $WORK; stop it with: scenarios/$SCENARIO/run --stop $WORK"
  else
    stop_everything
    rm -rf "$WORK"
  fi
  exit "$status"
}

# Workers run in their own session with a pid file, like the servers of tests/lib; their
# output goes to logs/NAME.log.
start_worker() {
  local name=$1
  shift
  (setsid "$@" </dev/null >>"$WORK/logs/$name.log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
    echo $! >"$WORK/pids/$name")
}

# SIGTERM, up to 15 s to go, then SIGKILL.
stop_worker() {
  local name=$1 pid i
  [[ -s $WORK/pids/$name ]] || return 0
  pid=$(<"$WORK/pids/$name")
  kill -TERM "$pid" 2>/dev/null || { rm -f "$WORK/pids/$name"; return 0; }
  for ((i = 0; i < 150; i++)); do
    # A stopped child lingers as a zombie until reaped: read the state, not kill -0.
    [[ -r /proc/$pid/stat && $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]] || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$WORK/pids/$name"
}

# The exit status of worker NAME once it has ended (waits up to $2 seconds; 124 if it has not).
wait_worker() {
  local name=$1 seconds=$2 pid
  [[ -s $WORK/pids/$name ]] || return 0
  pid=$(<"$WORK/pids/$name")
  wait_for "$seconds" worker_gone "$pid" || return 124
  rm -f "$WORK/pids/$name"
}
worker_gone() { [[ ! -r /proc/$1/stat || $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) == Z ]]; }

# Waits up to $1 seconds for "$2..." to succeed, polling every half second.
wait_for() {
  local until=$((SECONDS + $1))
  shift
  while ((SECONDS < until)); do
    if "$@"; then return 0; fi
    sleep 0.5
  done
  return 1
}

# The report: one JSON object per step in $WORK/steps.jsonl, printed by scenario_report.
failed=0
verdict() {
  local step=$1 ok=$2 summary=$3 figures=${4:-'{}'}
  ((ok)) || failed=1
  python3 -c 'import json,sys; print(json.dumps({"step": sys.argv[1], "ok": sys.argv[2] == "1", "summary": sys.argv[3], "figures": json.loads(sys.argv[4])}, ensure_ascii=False))' \
    "$step" "$ok" "$summary" "$figures" >>"$WORK/steps.jsonl"
  say "$( ((ok)) && echo PASS || echo FAIL ) $step: $summary"
}

# Prints the report (ENV: PASS|FAIL (N steps, S s[, NOTE]) and a line per step) and writes it
# as JSON to --json FILE when given. $1: a note for the headline (optional).
scenario_report() {
  python3 - "$WORK/steps.jsonl" "$SCENARIO" "$((SECONDS - started))" "${json:-}" "${1:-}" <<'EOF'
import json, sys
path, name, seconds, out, note = sys.argv[1:6]
try:
    steps = [json.loads(l) for l in open(path) if l.strip()]
except FileNotFoundError:
    steps = []
ok = bool(steps) and all(s["ok"] for s in steps)
print()
print(f"{name}: {'PASS' if ok else 'FAIL'}  ({len(steps)} steps, {seconds} s{', ' + note if note else ''})")
width = max([9] + [len(s["step"]) for s in steps])
for s in steps:
    print(f"  {'ok  ' if s['ok'] else 'FAIL'} {s['step']:<{width}} {s['summary']}")
if out:
    report = {"environment": name, "ok": ok, "seconds": int(seconds), "steps": steps}
    if note:
        report["note"] = note
    with open(out, "w") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
EOF
}
