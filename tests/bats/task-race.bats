#!/usr/bin/env bats
# The task-race scenario end to end (scenarios/task-race/run, as scripts/demo runs it, with
# the compose file's command lines): every step's verdict, and proof that its "nothing lost"
# checks (race-probe reconcile and the independent audit) fail when a task is lost, doubled
# or unexpected.

bats_require_minimum_version 1.5.0

setup_file() {
  load ../lib/test_helper
  export SCENARIO=$ENVKIT_SOURCE_DIR/scenarios/task-race
  export RACE_WORK=$BATS_FILE_TMPDIR/task-race
  local status=0
  "$SCENARIO/run" --keep --workdir "$RACE_WORK" --json "$RACE_WORK/report.json" --tasks 60 \
    >"$RACE_WORK.stdout" 2>"$RACE_WORK.stderr" || status=$?
  echo "$status" >"$RACE_WORK.status"
}

teardown_file() {
  load ../lib/test_helper
  "$SCENARIO/run" --stop "$RACE_WORK"
}

setup() {
  load ../lib/test_helper
}

# A figure of STEP: KEY.SUBKEY...
figure() { scenario_figure "$RACE_WORK/report.json" "$1" "$2"; }

@test "the scenario passes: the safe server keeps all 120 tasks, the unsafe one loses some, unknown answers are not losses" {
  cat "$RACE_WORK.stderr"
  [ "$(<"$RACE_WORK.status")" -eq 0 ]
  run -0 cat "$RACE_WORK.stdout"
  assert_line --regexp '^task-race: PASS  \(3 steps, [0-9]+ s\)$'
  # safe: both clients' 60 acknowledged, 120 in the file, by race-probe and by the audit.
  [ "$(figure safe reconcile.operations.ok)" -eq 120 ]
  [ "$(figure safe reconcile.stored)" -eq 120 ]
  [ "$(figure safe reconcile.lost)" -eq 0 ]
  [ "$(figure safe audit.in_file)" -eq 120 ]
  [ "$(figure safe audit.acknowledged_absent)" -eq 0 ]
  # unsafe: the race really lost tasks, and both checks count the same ones.
  local lost
  lost=$(figure unsafe reconcile.lost)
  ((lost > 0))
  [ "$(figure unsafe audit.acknowledged_absent)" -eq "$lost" ]
  [ "$(figure unsafe reconcile.valid)" = false ]
  # unknown: answers lost after the commit are classified unknown, found in the file, and
  # never counted lost.
  local unknown
  unknown=$(figure unknown reconcile.operations.unknown)
  ((unknown > 0))
  [ "$(figure unknown reconcile.recovered)" -eq "$unknown" ]
  [ "$(figure unknown audit.unknown_present)" -eq "$unknown" ]
  [ "$(figure unknown reconcile.lost)" -eq 0 ]
}

# The safe round's file and histories, with one change made by $1 (a python3 expression on
# the list `tasks`), reconciled and audited again.
recheck() {
  local dir=$BATS_TEST_TMPDIR/tampered
  mkdir -p "$dir"
  python3 -c 'import json,sys
tasks = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(tasks, open(sys.argv[2], "w"))' "$RACE_WORK/data/safe/tasks.json" "$dir/tasks.json" "$1"
  local h=$RACE_WORK/results/safe
  run --separate-stderr race-probe reconcile --read-back "file:$dir/tasks.json" --format json \
    "$h/client-a.jsonl" "$h/client-b.jsonl"
  reconcile_status=$status reconcile_output=$output
  run --separate-stderr python3 "$SCENARIO/audit.py" "$dir/tasks.json" "$h/client-a.jsonl" "$h/client-b.jsonl"
  audit_status=$status audit_output=$output
}

@test "the checks see one lost task, one doubled and one unexpected" {
  recheck 'tasks.pop(17)'
  [ "$reconcile_status" -eq 1 ]
  [[ $reconcile_output == *'"lost":1,'* ]]
  [ "$audit_status" -eq 1 ]
  [[ $audit_output == *'"acknowledged_absent": 1,'* ]]
  recheck 'tasks.append(dict(tasks[3]))'
  [ "$reconcile_status" -eq 1 ]
  [[ $reconcile_output == *'"duplicated":1,'* ]]
  [ "$audit_status" -eq 1 ]
  [[ $audit_output == *'"duplicated": 1,'* ]]
  recheck 'tasks.append(dict(tasks[0], id="client-c-0"))'
  [ "$audit_status" -eq 1 ]
  [[ $audit_output == *'"unexpected": 1'* ]]
  # Untouched, both pass: the failures above are the changes'.
  recheck 'pass'
  [ "$reconcile_status" -eq 0 ]
  [ "$audit_status" -eq 0 ]
}

@test "--help, usage errors exit 64, and --stop of what is not a kept run is refused" {
  run -0 "$SCENARIO/run" --help
  assert_output --partial 'Usage: scenarios/task-race/run [OPTION]...'
  run -64 "$SCENARIO/run" --tasks zero
  assert_output --partial '--tasks needs a positive whole number'
  run -64 "$SCENARIO/run" --bogus
  assert_output --partial "unknown option '--bogus'"
  run -64 "$SCENARIO/run" --stop "$BATS_TEST_TMPDIR"
  assert_output --partial 'is not the directory of a --keep run'
}
