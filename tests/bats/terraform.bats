#!/usr/bin/env bats
# terraform/ as shipped, without a cloud: the launch template's user-data passes shellcheck
# and runs for real into a scratch root, leaving envkit (the .deb of this build) installed
# and cron entries its commands accept; the HCL parses with HashiCorp's parser and every
# variable referenced or passed is declared (tests/terraform/hclcheck, built from Debian's
# golang-github-hashicorp-hcl-v2-dev); the target group checks what proxy-check checks.

bats_require_minimum_version 1.5.0

setup_file() {
  load ../lib/test_helper
  export PKG_DIR=$BATS_FILE_TMPDIR/pkg HCLCHECK=$BATS_FILE_TMPDIR/hclcheck
  (cd "$ENVKIT_BUILD_DIR" && cpack -G DEB -B "$PKG_DIR" >"$BATS_FILE_TMPDIR/cpack.log" 2>&1) || {
    cat "$BATS_FILE_TMPDIR/cpack.log" >&2
    return 1
  }
  DEB=$(ls "$PKG_DIR"/envkit_*.deb)
  export DEB
  # GOPATH mode over Debian's Go sources: no module download.
  (cd "$ENVKIT_SOURCE_DIR/tests/terraform/hclcheck" &&
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$BATS_FILE_TMPDIR/gocache GOFLAGS= \
      go build -o "$HCLCHECK" .) >"$BATS_FILE_TMPDIR/go.log" 2>&1 || {
    cat "$BATS_FILE_TMPDIR/go.log" >&2
    return 1
  }
}

setup() {
  load ../lib/test_helper
  MODULE=$ENVKIT_SOURCE_DIR/terraform/modules/bookstore-asg
  EXAMPLE=$ENVKIT_SOURCE_DIR/terraform/examples/bookstore
  USER_DATA=$MODULE/user-data.sh
}

# A root as cloud-init leaves it before running the user-data: settings and password.
make_root() {
  local root=$1
  mkdir -p "$root/etc/envkit"
  cat >"$root/etc/envkit/user-data.env" <<ENV
ENVKIT_DEB_URL='file://$DEB'
APP_PORT='8080'
HEALTH_PATH='/health'
HEALTH_INTERVAL='120'
HEALTH_TIMEOUT='5'
HEALTHY_THRESHOLD='3'
UNHEALTHY_THRESHOLD='2'
DATABASE_HOST='shop-db.example'
DATABASE_NAME='shop'
BACKUP_SCHEDULE='15 2 * * *'
BACKUP_KEEP_DAILY='7'
ENV
  printf 'backup-password-1\n' >"$root/etc/envkit/backup.pw"
}

@test "the user-data passes shellcheck" {
  run -0 shellcheck "$USER_DATA"
}

@test "the user-data runs for real into a root: envkit installed, cron entries its commands accept" {
  local root=$BATS_TEST_TMPDIR/root
  make_root "$root"
  run -0 env ENVKIT_ROOT="$root" sh "$USER_DATA"
  assert_output --partial 'installed proxy-check (envkit) '
  for c in sensor-push db-backup proxy-check; do
    assert_file_executable "$root/usr/bin/$c"
  done
  run -0 dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Status} ${Version}' envkit
  assert_output "install ok installed $(dpkg-deb -f "$DEB" Version)"
  local cron=$root/etc/cron.d/envkit line n=0
  assert_file_exists "$cron"
  run -0 stat -c %a "$cron"
  assert_output 644
  while read -r line; do
    [[ $line == '#'* || $line =~ ^[A-Z]+= || -z $line ]] && continue
    read -r _ _ _ _ _ user command <<<"$line"
    [[ $user == root ]]
    run -0 /bin/sh -c "$command --check-config"
    ((++n))
  done <"$cron"
  ((n == 2))
  # The health check's interval (120 s) in minutes, its timeout, thresholds, port and path.
  run -0 grep -F "*/2 * * * * root $root/usr/bin/proxy-check -q --timeout 5s --healthy-threshold 3 --unhealthy-threshold 2" "$cron"
  run -0 grep -F "'http://127.0.0.1:8080/health?status=200'" "$cron"
  run -0 grep -F "15 2 * * * root $root/usr/bin/db-backup dump -q --from 'mysql://backup@shop-db.example:3306/shop'" "$cron"
  # Again: the same result (cloud-init runs it once, but a re-run must not break it).
  cp "$cron" "$BATS_TEST_TMPDIR/first"
  run -0 env ENVKIT_ROOT="$root" sh "$USER_DATA"
  run -0 diff "$BATS_TEST_TMPDIR/first" "$cron"
  run -0 ls -A "$root/etc/cron.d"
  assert_output envkit
}

@test "the user-data refuses missing settings and a line its command rejects, leaving cron alone" {
  local root=$BATS_TEST_TMPDIR/root
  make_root "$root"
  sed -i '/^DATABASE_HOST=/d' "$root/etc/envkit/user-data.env"
  run -1 env ENVKIT_ROOT="$root" sh "$USER_DATA"
  assert_output --partial 'DATABASE_HOST is not set'
  make_root "$root"
  sed -i "s|^HEALTHY_THRESHOLD=.*|HEALTHY_THRESHOLD='200'|" "$root/etc/envkit/user-data.env"
  run -1 env ENVKIT_ROOT="$root" sh "$USER_DATA"
  assert_output --partial 'must be from 1 to 100'
  assert_not_exists "$root/etc/cron.d/envkit"
}

@test "the module and the example parse, and every variable used or passed is declared" {
  run -0 "$HCLCHECK" "$MODULE" "$EXAMPLE"
  assert_output ''
}

@test "hclcheck fails on a syntax error, an undeclared variable, a wrong module argument" {
  cp -r "$ENVKIT_SOURCE_DIR/terraform" "$BATS_TEST_TMPDIR/tf"
  local m=$BATS_TEST_TMPDIR/tf/modules/bookstore-asg e=$BATS_TEST_TMPDIR/tf/examples/bookstore
  sed -i 's|path                = var.health_check_path|path                = var.health_path|' "$m/main.tf"
  run -1 "$HCLCHECK" "$m"
  assert_output --partial 'var.health_path is not declared'
  cp "$MODULE/main.tf" "$m/main.tf"
  printf 'resource "x" "y" {\n  a = \n}\n' >>"$m/main.tf"
  run -1 "$HCLCHECK" "$m"
  assert_output --partial 'main.tf'
  cp "$MODULE/main.tf" "$m/main.tf"
  sed -i 's|  database_host      = var.database_host|  database_hots      = var.database_host|' "$e/main.tf"
  run -1 "$HCLCHECK" "$e"
  assert_output --partial 'database_hots is not a variable'
  assert_output --partial 'required variable database_host is not given'
}

@test "the launch template hands user-data.sh exactly the settings it reads" {
  # Keys of local.user_data_settings in main.tf, and the names user-data.sh requires.
  local from_tf from_script
  from_tf=$(sed -n '/user_data_settings = {/,/^  }/p' "$MODULE/main.tf" | grep -oE '^ +[A-Z_]+ +=' | tr -d ' =' | sort)
  from_script=$(sed -n '/^for name in /,/; do$/p' "$USER_DATA" | tr ' \\;' '\n\n\n' | grep -E '^[A-Z_]+$' | sort)
  [[ -n $from_tf && $from_tf == "$from_script" ]] || { diff <(echo "$from_tf") <(echo "$from_script"); false; }
  run -0 grep -F 'path        = "/etc/envkit/user-data.env"' "$MODULE/main.tf"
  run -0 grep -F 'path        = "/etc/envkit/backup.pw"' "$MODULE/main.tf"
  run -0 grep -F 'content     = file("${path.module}/user-data.sh")' "$MODULE/main.tf"
  # The target group checks what proxy-check checks: the same variables.
  local hc
  hc=$(sed -n '/health_check {/,/}/p' "$MODULE/main.tf")
  for pair in "path:var.health_check_path" "interval:var.health_check_interval" "timeout:var.health_check_timeout" \
    "healthy_threshold:var.healthy_threshold" "unhealthy_threshold:var.unhealthy_threshold" 'matcher:"200"'; do
    [[ $hc =~ ${pair%%:*}\ +=\ ${pair#*:} ]] || { echo "health_check lacks $pair"; false; }
  done
  for pair in "HEALTH_PATH:var.health_check_path" "HEALTH_INTERVAL:tostring(var.health_check_interval)" \
    "HEALTHY_THRESHOLD:tostring(var.healthy_threshold)" "UNHEALTHY_THRESHOLD:tostring(var.unhealthy_threshold)" \
    "HEALTH_TIMEOUT:tostring(var.health_check_timeout)" "APP_PORT:tostring(var.app_port)"; do
    grep -E "^ +${pair%%:*} += " "$MODULE/main.tf" | grep -qF "= ${pair#*:}" || { echo "settings lack $pair"; false; }
  done
}

@test "every variable has a description, a type, and the module's inputs are validated" {
  run -0 grep -c 'validation {' "$MODULE/variables.tf"
  ((output >= 10))
  run -0 "$HCLCHECK" "$MODULE"   # hclcheck also requires description and type
}
