#!/usr/bin/env bats
# playbooks/ as shipped: every playbook passes ansible-playbook --syntax-check and
# ansible-lint; the envkit role runs for real on this machine (connection local) into a
# scratch root, twice, the second run changing nothing, and leaves envkit installed and
# cron entries that cron's /bin/sh runs as the commands accept (--check-config).

bats_require_minimum_version 1.5.0

setup_file() {
  load ../lib/test_helper
  export PKG_DIR=$BATS_FILE_TMPDIR/pkg
  (cd "$ENVKIT_BUILD_DIR" && cpack -G DEB -B "$PKG_DIR" >"$BATS_FILE_TMPDIR/cpack.log" 2>&1) || {
    cat "$BATS_FILE_TMPDIR/cpack.log" >&2
    return 1
  }
  DEB=$(ls "$PKG_DIR"/envkit_*.deb)
  export DEB
}

setup() {
  load ../lib/test_helper
  cd "$ENVKIT_SOURCE_DIR/playbooks" || return 1
  export ANSIBLE_NOCOLOR=1 ANSIBLE_PIPELINING=1 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_LOCAL_TEMP=$BATS_TEST_TMPDIR/ansible ANSIBLE_REMOTE_TEMP=$BATS_TEST_TMPDIR/ansible
  # Stand-ins for the vault: playbooks only reference vault_* variables.
  VAULT=(-e vault_weather_password=w3ather -e vault_backup_password=b4ckup -e vault_shop_password=sh0p
    -e vault_rabbitmq_password=r -e vault_redis_password=r -e vault_mongodb_password=m)
}

# The iot-weather playbook's workers play, for real, here, into root $1.
run_workers_play() {
  ansible-playbook -i inventory/example.ini iot-weather.yml --limit workers -c local \
    -e ansible_become=false -e "envkit_root=$1" -e "envkit_deb=$DEB" "${VAULT[@]}" "${@:2}"
}

@test "every playbook passes ansible-playbook --syntax-check" {
  local n=0 p
  for p in *.yml; do
    run -0 ansible-playbook --syntax-check -i inventory/example.ini "$p"
    ((++n))
  done
  ((n >= 6))
  # one per environment, and exercise.yml
  for p in iot-weather bookstore weather-tweets task-race product-shards exercise; do
    assert_file_exists "$p.yml"
  done
}

@test "every playbook and role passes ansible-lint" {
  run -0 ansible-lint --offline --nocolor *.yml
}

@test "the example inventory has every group the playbooks use" {
  run -0 ansible-inventory -i inventory/example.ini --graph
  for g in database proxy workers brokers rsA rsB; do
    assert_output --partial "@$g:"
  done
}

@test "the envkit role runs for real into a root, twice, the second run changing nothing" {
  local root=$BATS_TEST_TMPDIR/root
  mkdir -p "$root"
  run -0 run_workers_play "$root"
  assert_output --regexp 'local\.example +: ok=[0-9]+ +changed=[1-9]'
  run -0 run_workers_play "$root"
  assert_output --regexp 'local\.example +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0'
  # envkit is installed there, with its man pages and completions.
  for c in sensor-push db-backup proxy-check; do
    assert_file_executable "$root/usr/bin/$c"
    assert_file_exists "$root/usr/share/man/man1/$c.1"
  done
  run -0 dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Status}' envkit
  assert_output 'install ok installed'
  # Passwords only the owner can read, from the vault variables.
  run -0 stat -c %a "$root/etc/envkit/weather.pw"
  assert_output 600
  run -0 cat "$root/etc/envkit/backup.pw"
  assert_output b4ckup
  # The cron entries: three jobs, each a line cron's /bin/sh runs as the command accepts.
  local cron=$root/etc/cron.d/envkit line n=0
  assert_file_exists "$cron"
  while read -r line; do
    [[ $line == '#'* || $line =~ ^[A-Z]+= || -z $line ]] && continue
    read -r _ _ _ _ _ user command <<<"$line"
    [[ $user == root ]]
    run -0 /bin/sh -c "$command --check-config"
    ((++n))
  done <"$cron"
  ((n == 3))
  run -0 grep -c "sensor-push -q --once --spool $root/var/spool/envkit/sensor-push" "$cron"
  run -0 grep -F "'mysql://weather@cloud.example:33060/iot?table=readings&create=true'" "$cron"
}

@test "a cron job with an option its command does not have fails the play before cron sees it" {
  local root=$BATS_TEST_TMPDIR/root
  mkdir -p "$root"
  cat >"$BATS_TEST_TMPDIR/bad.yml" <<'YAML'
envkit_cron_jobs:
  - {name: bad, schedule: "* * * * *", command: sensor-push, args: [--once, --bogus-option, --to, "-"]}
YAML
  # The role's cron tasks alone, with this build's commands (the install is test 4's).
  run -2 ansible-playbook -i inventory/example.ini ../tests/ansible/every-environment.yml --limit workers -c local \
    -e "envkit_test_root=$root" -e "envkit_bin_dir=$ENVKIT_BUILD_DIR/bin" "${VAULT[@]}" \
    -e '{"envkit_test_environments": ["iot-weather"]}' -e "@$BATS_TEST_TMPDIR/bad.yml"
  assert_output --partial "unrecognised option '--bogus-option'"
  assert_not_exists "$root/iot-weather/etc/cron.d/envkit"
}

@test "every environment's envkit jobs pass --check-config through the role" {
  run -0 ansible-playbook -i inventory/example.ini ../tests/ansible/every-environment.yml --limit workers -c local \
    -e "envkit_test_root=$BATS_TEST_TMPDIR/envs" -e "envkit_bin_dir=$ENVKIT_BUILD_DIR/bin" "${VAULT[@]}" \
    -e '{"envkit_test_environments": ["bookstore", "weather-tweets", "task-race", "product-shards"]}'
  assert_output --regexp 'failed=0'
  for e in bookstore weather-tweets task-race product-shards; do
    assert_file_exists "$BATS_TEST_TMPDIR/envs/$e/etc/cron.d/envkit"
  done
  run -0 grep -c targets.yaml "$BATS_TEST_TMPDIR/envs/bookstore/etc/cron.d/envkit"
  run -0 grep -c -- '/race-probe -q --target http://.*:8080/tasks .*--history ' "$BATS_TEST_TMPDIR/envs/task-race/etc/cron.d/envkit"
  run -0 proxy-check --check-config --config "$BATS_TEST_TMPDIR/envs/bookstore/etc/envkit/targets.yaml"
  # queue-relay's lines carry each server's password file in the environment (env VAR=FILE):
  # cron's /bin/sh runs them as queue-relay accepts (cron turns \% into %), and without the
  # file the check fails, so the variable is what supplies the password.
  local e line
  for e in bookstore weather-tweets; do
    line=$(grep '/queue-relay ' "$BATS_TEST_TMPDIR/envs/$e/etc/cron.d/envkit")
    read -r _ _ _ _ _ _ line <<<"${line//\\%/%}"
    [[ $line == env\ *_PASSWORD_FILE=* ]]
    run -0 /bin/sh -c "$line --check-config"
    rm "$BATS_TEST_TMPDIR/envs/$e/etc/envkit/amqp.pw"
    run -66 /bin/sh -c "$line --check-config"
    assert_output --partial "ENVKIT_AMQP_PASSWORD_FILE"
  done
}
