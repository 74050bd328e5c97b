#!/usr/bin/env bats
# The failure table (lib/core/include/envkit/exit_status.hpp) as a command shows it: one test
# per row that a command exposes, provoked for real on loopback (a closed port, a name that
# cannot resolve, a server that never answers or hangs up, a refused password, a held lock)
# and checked by exact exit status. db-backup is the witness: it exits with the table's
# codes (proxy-check keeps Nagios states, sensor-push spools what it can).
# Rows not here cannot be provoked from outside on a machine whose resolver answers
# (resolver_unavailable), are internal (internal), need a server in a state these tests do
# not create (io_timeout, server_busy, permission_denied, wrong_protocol), or have their
# own test elsewhere (interrupted: db-backup.bats "SIGTERM mid-dump: exits 75"), or belong
# to a listening command (address_in_use); tests/unit/lib/exit_status_test.cpp pins every row.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_mariadb
}

teardown_file() {
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
  out=$BATS_TEST_TMPDIR/backups
  db=exit$BATS_TEST_NUMBER
  mariadb_for mariadb -N -B -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`;
    CREATE TABLE \`$db\`.t (id INT PRIMARY KEY); INSERT INTO \`$db\`.t VALUES (1), (2);
    GRANT ALL ON \`$db\`.* TO 'envkit'@'%';"
  url="mysql://envkit@127.0.0.1:$MARIADB_PORT/$db"
}

@test "usage (64): a URL no backend takes" {
  run -64 --separate-stderr db-backup dump --from "ftp://x/y" --out "$out"
}

@test "config (78): a bad value in the configuration file" {
  printf 'threads: nope\n' >"$BATS_TEST_TMPDIR/db-backup.yaml"
  run -78 --separate-stderr db-backup dump --config "$BATS_TEST_TMPDIR/db-backup.yaml" --from "$url" --out "$out"
  [[ $stderr == *"db-backup.yaml:1"* ]]
}

@test "name_not_found (78): a host name that does not exist" {
  run -78 --separate-stderr db-backup dump --from "mysql://envkit@no-such-host.invalid/$db" --out "$out"
  [[ $stderr == *"no-such-host.invalid"* ]]
}

@test "connection_refused (69): nothing listens on the port" {
  run -69 --separate-stderr db-backup dump --from "mysql://envkit@127.0.0.1:$(free_port)/$db" --out "$out"
}

@test "unreachable (69): a listener that never answers, within the connect timeout" {
  start_hostile_server silent silent
  SECONDS=0
  run -69 --separate-stderr db-backup dump --from "mysql://envkit@127.0.0.1:$SILENT_PORT/$db" \
    --out "$out" --connect-timeout 1s
  ((SECONDS < 10))
}

@test "connection_lost (69): the server hangs up in the middle of the handshake" {
  start_hostile_server hangup close-mid-handshake
  run -69 --separate-stderr db-backup dump --from "mysql://envkit@127.0.0.1:$HANGUP_PORT/$db" \
    --out "$out" --connect-timeout 2s
}

@test "tls_failed (78): TLS asked for, the server offers none" {
  run -78 --separate-stderr db-backup dump --from "$url?tls=true&tls-verify=false" --out "$out"
  [[ $stderr == *"TLS"* ]]
}

@test "auth_refused (78): a wrong password" {
  MYSQL_PWD=wrong run -78 --separate-stderr db-backup dump --from "$url" --out "$out"
  [[ $stderr == *"1045"* ]]
}

@test "not_found (78): a database that does not exist" {
  run -78 --separate-stderr db-backup dump --from "mysql://envkit@127.0.0.1:$MARIADB_PORT/no_such_db" --out "$out"
}

@test "bad_data (65): a backup directory without its manifest" {
  run -0 db-backup dump -q --from "$url" --out "$out"
  local b
  b=$(find "$out" -mindepth 1 -maxdepth 1 -type d | head -1)
  rm "$b/manifest.json"
  run -65 --separate-stderr db-backup verify "$b"
}

@test "no_input (66): no such backup directory" {
  run -66 --separate-stderr db-backup verify "$BATS_TEST_TMPDIR/nowhere"
}

@test "local_io (74): the output directory cannot be created" {
  run -74 --separate-stderr db-backup dump --from "$url" --out /proc/envkit-cannot-create
}

@test "lock_held (75): another run holds the lock" {
  mkdir -p "$out"
  run -75 --separate-stderr flock "$out/.lock" db-backup prune "$out" --keep-last 1
  [[ $stderr == *"another db-backup is working on"* ]]
}
