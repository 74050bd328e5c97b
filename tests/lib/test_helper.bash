# Common setup every envkit Bats file loads: assertions, isolated HOME/TMPDIR, built commands on PATH, server harness.
# shellcheck source-path=SCRIPTDIR
#
# Use from tests/bats/<name>.bats with `load ../lib/test_helper`. Bats sources the test file
# (and so this helper) once for setup_file/teardown_file and once per test, so everything
# here is safe to run many times, and cheap: it forks nothing when it can avoid it.

_envkit_lib_dir=${BASH_SOURCE[0]%/*}
[[ ${BASH_SOURCE[0]} == */* ]] || _envkit_lib_dir=.

# ctest sets these; by hand, derive them from where this file lives.
if [[ -z ${ENVKIT_SOURCE_DIR:-} ]]; then
  ENVKIT_SOURCE_DIR=$(cd "$_envkit_lib_dir/../.." && pwd)
fi
: "${ENVKIT_BUILD_DIR:=$ENVKIT_SOURCE_DIR/build}"
export ENVKIT_SOURCE_DIR ENVKIT_BUILD_DIR

# The commands under test come from this build, never from an older install.
if [[ -d $ENVKIT_BUILD_DIR/bin && :$PATH: != *":$ENVKIT_BUILD_DIR/bin:"* ]]; then
  PATH=$ENVKIT_BUILD_DIR/bin:$PATH
fi
export PATH

# The MongoDB driver keeps its counters in /dev/shm/mongoc-PID unless told not to. The tests
# SIGKILL commands that link it, and the files they leave meet a later process with the same
# PID, which then warns "Falling back to malloc for counters" on stderr, where the tests
# look for nothing (CI saw it once, in db-backup.bats).
export MONGOC_DISABLE_SHM=1

# bats-support, bats-assert and bats-file. Their load.bash files run `dirname` once per
# source file, 18 forks for every test; their src/*.bash only define functions, so they are
# sourced directly.
_envkit_bats_libs=${ENVKIT_BATS_LIB_DIR:-/usr/lib/bats}
for _envkit_lib in bats-support bats-assert bats-file; do
  if [[ -d $_envkit_bats_libs/$_envkit_lib/src ]]; then
    for _envkit_file in "$_envkit_bats_libs/$_envkit_lib"/src/*.bash; do
      # shellcheck disable=SC1090
      source "$_envkit_file"
    done
  else
    load "$_envkit_bats_libs/$_envkit_lib/load"
  fi
done
unset _envkit_bats_libs _envkit_lib _envkit_file

# A test never reads the developer's dotfiles (~/.my.cnf, ~/.erlang.cookie, ~/.config) nor
# leaves files in the shared /tmp. setup_file has no BATS_TEST_TMPDIR yet: it gets the
# file's own directory.
_envkit_isolated=${BATS_TEST_TMPDIR:-${BATS_FILE_TMPDIR:-}}
if [[ -n $_envkit_isolated ]]; then
  export HOME=$_envkit_isolated/home
  export TMPDIR=$_envkit_isolated/tmp
  [[ -d $HOME && -d $TMPDIR ]] || mkdir -p "$HOME" "$TMPDIR"
fi
unset _envkit_isolated

# shellcheck source=servers.bash
source "$_envkit_lib_dir/servers.bash"
unset _envkit_lib_dir

# After `run envkit_unit_tests --gtest_filter=Live...`: at least MIN tests ran and every one
# passed. A skipped Live test means the server was never used, which must not pass.
assert_all_passed() {
  local min=$1
  assert_success
  refute_output --partial '[  SKIPPED ]'
  [[ $output =~ \[==========\]\ ([0-9]+)\ tests?\ from ]] || fail "no test summary in: $output"
  local ran=${BASH_REMATCH[1]}
  ((ran >= min)) || fail "only $ran tests ran, expected at least $min"
  assert_output --partial "[  PASSED  ] $ran test"
}

# kill_at_progress PID TARGET LOG CMD...: SIGKILLs background job PID once CMD prints a number
# >= TARGET (polled every 20 ms, 90 s at most), and reaps it. Fails, with LOG's tail, when
# there is no progress in time or PID exits first: the kill loops' one way to kill mid-run.
kill_at_progress() {
  local pid=$1 target=$2 log=$3 deadline=$((SECONDS + 90))
  shift 3
  until (($("$@") >= target)); do
    ((SECONDS < deadline)) || { echo "no progress to $target" >&2; tail "$log" >&2; return 1; }
    kill -0 "$pid" 2>/dev/null || { echo "exited before $target" >&2; tail "$log" >&2; return 1; }
    sleep 0.02
  done
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
}

# scenario_figure REPORT STEP PATH: a figure of a scenario's --json report, the value at
# PATH (dot-separated keys, numbers index arrays) in STEP's figures; booleans as true/false.
scenario_figure() {
  jq -r --arg step "$2" --arg path "$3" \
    '.steps[] | select(.step == $step) | .figures | getpath($path | split(".") | map(tonumber? // .))' "$1"
}
