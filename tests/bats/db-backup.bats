#!/usr/bin/env bats
# db-backup end to end against a real MariaDB (direct and through the nginx stream proxy):
# round trip of nasty data, snapshot consistency, interrupted runs, corruption, locking,
# diff, prune, permissions, secrets, hostile identifiers, the daemon. The Redis and MongoDB
# backends have their own file, db-backup-redis-mongo.bats.

bats_require_minimum_version 1.5.0
load ../lib/test_helper

setup_file() {
  start_mariadb
  start_nginx_stream nginx "127.0.0.1:$MARIADB_PORT"
}

teardown_file() {
  stop_all_servers
}

setup() {
  export MYSQL_PWD=$MARIADB_PASSWORD
  out=$BATS_TEST_TMPDIR/backups
  src=src$BATS_TEST_NUMBER
  dst=dst$BATS_TEST_NUMBER
  make_db "$src"
  make_db "$dst"
  src_url="mysql://envkit@127.0.0.1:$MARIADB_PORT/$src"
  dst_url="mysql://envkit@127.0.0.1:$MARIADB_PORT/$dst"
}

# As root over the socket: databases for each test, granted to the envkit user.
root_sql() { mariadb_for mariadb --default-character-set=utf8mb4 -N -B -e "$1"; }
make_db() {
  root_sql "DROP DATABASE IF EXISTS \`$1\`; CREATE DATABASE \`$1\`; GRANT ALL ON \`$1\`.* TO 'envkit'@'%';"
}
sql() { mariadb_for mariadb --default-character-set=utf8mb4 -N -B "$1" -e "$2"; }

# Every awkward value the format must carry: NULLs, emoji and accents, quotes, backslashes,
# newlines, raw bytes, DECIMAL(65,30), DATETIME(6), TIMESTAMP(6), JSON, a table without a
# primary key, and tables whose names need quoting.
load_nasty() {
  sql "$1" "
    CREATE TABLE nasty (
      id INT PRIMARY KEY, s VARCHAR(200), t TEXT, b VARBINARY(64), bl BLOB,
      d DECIMAL(65,30), dt DATETIME(6), ts TIMESTAMP(6) NULL, j JSON, f DOUBLE, fl FLOAT,
      u BIGINT UNSIGNED, bt BIT(8), e ENUM('a','b'), dd DATE, tm TIME(3)
    ) DEFAULT CHARSET=utf8mb4;
    INSERT INTO nasty VALUES
      (1, 'café 😀 ñandú', 'line1\nline2\r\n\ttab', X'00FF0A0D5C2722', X'',
       '12345678901234567890123456789012345.123456789012345678901234567891',
       '2026-11-22 14:15:00.123456', '2026-11-22 19:15:00.654321', '{\"a\": [1, 2.5, \"x\"], \"b\": null, \"c\": {\"d\": \"é\"}}',
       1.7976931348623157e308, 0.1, 18446744073709551615, b'10100101', 'b', '2026-02-28', '-838:59:59.000'),
      (2, 'quote '' double \" backtick \` backslash \\\\ end', 'a\\\\nb (literal backslash-n)', NULL, NULL,
       '-0.000000000000000000000000000001', '1000-01-01 00:00:00.000000', NULL, '[]',
       -0.0, -3.4e38, 0, b'0', 'a', '1000-01-01', '00:00:00.001'),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (4, '', '', X'00', X'DEADBEEF', '0', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999',
       '\"just a string\"', 5e-324, 1, 42, b'11111111', 'a', '9999-12-31', '838:59:59.999');
    CREATE TABLE nopk (a INT, b TEXT);
    INSERT INTO nopk VALUES (1, 'dup'), (1, 'dup'), (2, NULL), (NULL, 'x');
    CREATE TABLE \`we\`\`ird name\` (\`col\`\`x\` INT PRIMARY KEY, \`sel ect\` TEXT);
    INSERT INTO \`we\`\`ird name\` VALUES (1, 'one'), (2, 'two');
  "
}

# A table big enough to take a while when throttled.
load_big() {
  local db=$1 rows=$2
  sql "$db" "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(40));
    INSERT INTO big SELECT seq, CONCAT('row ', seq) FROM seq_1_to_$rows;
    CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(40));
    INSERT INTO small VALUES (1, 'one'), (2, 'two');
    ANALYZE TABLE big, small;" >/dev/null
}

latest() { db-backup list "$1" | grep '"complete":true' | tail -1 | sed 's/.*"path":"\([^"]*\)".*/\1/'; }
manifest_rows() { grep -A3 "\"name\": \"$2\"" "$1/manifest.json" | grep '"rows"' | head -1 | tr -dc 0-9; }

@test "help, version, usage errors" {
  run -0 db-backup --help
  assert_output --partial "db-backup dump --from URL --out DIR"
  run -0 db-backup --version
  run -64 --separate-stderr db-backup
  assert_equal "$stderr" "$(printf "db-backup: error: no subcommand: dump, restore, verify, diff, list or prune\nTry 'db-backup --help' for more information.")"
  run -64 --separate-stderr db-backup frobnicate
  run -64 --separate-stderr db-backup dump --out "$out"
  run -64 --separate-stderr db-backup verify "$out" --replace
  assert_output ""
  [[ $stderr == *"--replace does not go with 'db-backup verify'"* ]]
  run -64 --separate-stderr db-backup prune "$out"
  run -66 --separate-stderr db-backup verify "$BATS_TEST_TMPDIR/nowhere"
  run -69 --separate-stderr db-backup dump --from "mysql://envkit@127.0.0.1:$(free_port)/x" --out "$out" --connect-timeout 2s
  run -64 --separate-stderr db-backup dump --from "ftp://x/y" --out "$out"
}

@test "round trip of nasty data: dump, restore into a fresh database, dump again: identical" {
  load_nasty "$src"
  run -0 --separate-stderr db-backup dump --from "$src_url" --out "$out/a"
  assert_output ""
  assert_equal "$stderr" ""  # quiet on success, no progress when stderr is not a terminal
  b1=$(latest "$out/a")
  run -0 db-backup verify "$b1"
  run -0 --separate-stderr db-backup restore --from "$out/a" --to "$dst_url"
  run -0 db-backup dump --from "$dst_url" --out "$out/b"
  b2=$(latest "$out/b")
  # Same records, by the tool's own comparison...
  run -0 --separate-stderr db-backup diff "$b1" "$b2"
  assert_output ""
  # ...and by the server's, independently of db-backup's encoding.
  q="SELECT id, HEX(s), HEX(t), HEX(b), HEX(bl), d, dt, ts, j, f, fl, u, HEX(bt), e, dd, tm FROM nasty ORDER BY id"
  assert_equal "$(sql "$dst" "SET time_zone='+00:00'; $q")" "$(sql "$src" "SET time_zone='+00:00'; $q")"
  for t in nasty nopk '`we``ird name`'; do
    a=$(sql "$src" "CHECKSUM TABLE $t" | cut -f2)
    b=$(sql "$dst" "CHECKSUM TABLE $t" | cut -f2)
    [[ -n $a && $a == "$b" ]] || { echo "CHECKSUM TABLE $t: $a != $b"; false; }
  done
  assert_equal "$(sql "$dst" 'SELECT a, b FROM nopk ORDER BY a, b')" "$(sql "$src" 'SELECT a, b FROM nopk ORDER BY a, b')"
  # The format is typed: decimals exact strings, datetimes with fractions, zones stated,
  # binary as base64, JSON as JSON, NULL as null.
  f=$(ls "$b1"/nasty.00000.jsonl)
  grep -q '"d":"12345678901234567890123456789012345.123456789012345678901234567891"' "$f"
  grep -q '"dt":"2026-11-22T14:15:00.123456"' "$f"
  grep -q '"ts":"2026-11-22T19:15:00.654321Z"' "$f"
  grep -q '"b":"AP8KDVwnIg=="' "$f"
  grep -qF '"j":{"a": [1, 2.5, "x"], "b": null, "c": {"d": "é"}}' "$f"
  grep -qF '"j":[]' "$f"
  grep -q '"s":null' "$f"
  grep -q '"u":18446744073709551615' "$f"
  grep -q '"name": "we`ird name"' "$b1/manifest.json"
}

@test "compressed backups (gzip, zstd) verify and restore" {
  load_nasty "$src"
  for alg in gzip zstd; do
    run -0 db-backup dump --from "$src_url" --out "$out/$alg" --compress "$alg"
    b=$(latest "$out/$alg")
    suffix=gz && [[ $alg == zstd ]] && suffix=zst
    ls "$b" | grep -q "^nasty.00000.jsonl.$suffix\$"
    run -0 db-backup verify "$b"
  done
  run -0 db-backup restore --from "$out/zstd" --to "$dst_url"
  assert_equal "$(sql "$dst" 'CHECKSUM TABLE nasty' | cut -f2)" "$(sql "$src" 'CHECKSUM TABLE nasty' | cut -f2)"
}

@test "dump through the nginx stream proxy" {
  load_big "$src" 5000
  run -0 db-backup dump --from "mysql://envkit@127.0.0.1:$NGINX_PORT/$src" --out "$out" --threads 2 --chunk-rows 1000
  b=$(latest "$out")
  assert_equal "$(manifest_rows "$b" big)" 5000
  [[ $(ls "$b" | grep -c '^big\.') -ge 4 ]]  # split into primary-key chunks
  run -0 db-backup verify "$b"
  grep -q '"method": "ftwrl"' "$b/manifest.json"
  grep -q '"consistent": true' "$b/manifest.json"
}

# Rows written while a dump runs must not be in it. The dump pauses (test hook) right after
# its snapshot; the test writes, then lets it go on. With the snapshot disabled (test hook)
# the same writes show up, so this test would fail without the snapshot.
snapshot_run() {
  local threads=$1 out_dir=$2
  local go=$BATS_TEST_TMPDIR/go$threads$3
  ENVKIT_DB_BACKUP_TEST_PAUSE=$go db-backup dump --from "$src_url" --out "$out_dir" --threads "$threads" \
    --chunk-rows 1000 3>&- &
  local pid=$!
  for _ in $(seq 100); do [[ -e $go.ready ]] && break; sleep 0.1; done
  [[ -e $go.ready ]]
  sql "$src" "INSERT INTO big VALUES (100001, 'late'); INSERT INTO small VALUES (3, 'late'); DELETE FROM small WHERE id = 1; UPDATE big SET v = 'changed' WHERE id = 1"
  touch "$go"
  wait "$pid"
  sql "$src" "DELETE FROM big WHERE id = 100001; DELETE FROM small WHERE id = 3; INSERT INTO small VALUES (1, 'one'); UPDATE big SET v = 'row 1' WHERE id = 1"
}

@test "rows written during a dump are not in it (snapshot), also with --threads 4" {
  load_big "$src" 5000
  for threads in 1 4; do
    snapshot_run "$threads" "$out/t$threads"
    b=$(latest "$out/t$threads")
    assert_equal "$(manifest_rows "$b" big)" 5000
    assert_equal "$(manifest_rows "$b" small)" 2
    ! grep -q late "$b"/*.jsonl
    ! grep -q changed "$b"/*.jsonl
    grep -q '"v":"one"' "$b"/small.00000.jsonl
  done
  # Control: the same run without the snapshot sees the writes.
  ENVKIT_DB_BACKUP_NO_SNAPSHOT=1 snapshot_run 4 "$out/nosnap" x
  b=$(latest "$out/nosnap")
  grep -q late "$b"/*.jsonl
  grep -q '"consistent": false' "$b/manifest.json"
}

@test "SIGKILL mid-dump: no manifest, verify says incomplete, the next run is complete" {
  load_big "$src" 20000
  ENVKIT_DB_BACKUP_THROTTLE_MS=300 db-backup dump --from "$src_url" --out "$out" --threads 1 3>&- &
  pid=$!
  for _ in $(seq 100); do compgen -G "$out/.tmp-*/.big*" >/dev/null && break; sleep 0.1; done
  sleep 0.5
  kill -KILL "$pid"
  wait "$pid" || true
  tmp=$(compgen -G "$out/.tmp-*")
  [[ -d $tmp && ! -e $tmp/manifest.json ]]
  ! compgen -G "$out/*/manifest.json"
  run -65 --separate-stderr db-backup verify "$tmp"
  [[ $stderr == *"incomplete backup"* ]]
  run -65 --separate-stderr db-backup verify "$out"
  [[ $stderr == *"incomplete backup"* ]]
  run -65 --separate-stderr db-backup restore --from "$out" --to "$dst_url"
  run -0 db-backup list "$out"
  assert_output --partial '"complete":false'
  run -0 db-backup dump --from "$src_url" --out "$out"
  ! compgen -G "$out/.tmp-*"
  b=$(latest "$out")
  assert_equal "$(manifest_rows "$b" big)" 20000
  run -0 db-backup verify "$out"
}

@test "SIGTERM mid-dump: exits 75, nothing left that looks like a backup" {
  load_big "$src" 20000
  ENVKIT_DB_BACKUP_THROTTLE_MS=300 db-backup dump --from "$src_url" --out "$out" --threads 1 2>"$BATS_TEST_TMPDIR/err" 3>&- &
  pid=$!
  for _ in $(seq 100); do compgen -G "$out/.tmp-*/.big*" >/dev/null && break; sleep 0.1; done
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  assert_equal "$rc" 75
  grep -q "stopped by signal" "$BATS_TEST_TMPDIR/err"
  ! compgen -G "$out/.tmp-*"
  ! compgen -G "$out/2*"
}

@test "progress on a terminal: rows, bytes, rate per table; none when stderr is not one" {
  load_big "$src" 3000
  # script(1) gives the command a terminal; its output is the terminal's.
  script -qec "db-backup dump --from '$src_url' --out '$out/tty'" "$BATS_TEST_TMPDIR/typescript" >/dev/null
  grep -aq 'dump big: 3000 rows, .* rows/s' "$BATS_TEST_TMPDIR/typescript"
  grep -aq 'dump small: 2 rows' "$BATS_TEST_TMPDIR/typescript"
  script -qec "db-backup dump --no-progress --from '$src_url' --out '$out/tty2'" "$BATS_TEST_TMPDIR/quiet" >/dev/null
  ! grep -aq 'rows/s' "$BATS_TEST_TMPDIR/quiet"
}

@test "a corrupted byte in a data file: verify names the file and fails, restore refuses" {
  load_big "$src" 3000
  run -0 db-backup dump --from "$src_url" --out "$out"
  b=$(latest "$out")
  f=$b/big.00000.jsonl
  # Flip one digit of a value in the middle: still valid JSON, same size, same keys: only
  # the checksum sees it.
  off=$(( $(stat -c %s "$f") / 2 ))
  off=$(grep -bo '"row [0-9]' "$f" | awk -F: -v o="$off" '$1 >= o { print $1 + 5; exit }')
  c=$(dd if="$f" bs=1 skip="$off" count=1 2>/dev/null)
  printf '%s' "$(( (c + 1) % 10 ))" | dd of="$f" bs=1 seek="$off" conv=notrunc 2>/dev/null
  run -65 --separate-stderr db-backup verify "$b"
  [[ $stderr == *"big.00000.jsonl: SHA-256 mismatch"* ]]
  run -65 --separate-stderr db-backup restore --from "$b" --to "$dst_url"
  [[ $stderr == *"fails verification"* ]]
  assert_equal "$(sql "$dst" 'SHOW TABLES')" ""
  run -0 db-backup restore --from "$b" --to "$dst_url" --force
}

@test "restore: creates a missing database, takes the latest under DIR, refuses a non-empty target unless --replace" {
  load_big "$src" 100
  run -0 db-backup dump --from "$src_url" --out "$out"
  sql "$src" "INSERT INTO small VALUES (9, 'newer')"
  sleep 1
  run -0 db-backup dump --from "$src_url" --out "$out"
  root_sql "DROP DATABASE $dst"  # gone with its server: restore creates it
  run -0 db-backup restore --from "$out" --to "$dst_url" --threads 3
  assert_equal "$(sql "$dst" 'SELECT v FROM small WHERE id = 9')" newer
  run -65 --separate-stderr db-backup restore --from "$out" --to "$dst_url"
  [[ $stderr == *"already exists"*"--replace"* ]]
  sql "$dst" "DELETE FROM small"
  run -0 db-backup restore --from "$out" --to "$dst_url" --replace
  assert_equal "$(sql "$dst" 'SELECT COUNT(*) FROM small')" 3
}

@test "restore loads with LOAD DATA LOCAL, fails on what strict INSERT refuses, and uses INSERT where local_infile is off" {
  sql "$src" "CREATE TABLE t (id INT PRIMARY KEY, l VARCHAR(20) CHARACTER SET latin1,
      p POINT NULL, n TINYINT UNSIGNED, bl BLOB);
    INSERT INTO t VALUES (1, 'café Ñandú', POINT(1.5, -2), 7, X'5C095C0A0D00FF'),
      (2, NULL, NULL, 255, NULL), (3, 'tab\there \\\\N', POINT(0, 0), 0, X'');"
  run -0 db-backup dump --from "$src_url" --out "$out"
  q="SELECT id, HEX(l), ST_AsText(p), n, HEX(bl) FROM t ORDER BY id"
  com() { root_sql "SHOW GLOBAL STATUS LIKE '$1'" | cut -f2; }
  loads=$(com Com_load)
  run -0 --separate-stderr db-backup restore --from "$out" --to "$dst_url"
  assert_equal "$(sql "$dst" "$q")" "$(sql "$src" "$q")"
  (( $(com Com_load) > loads ))
  # (The latin1 column makes this table load as hex; the nasty table of the round trip above
  # loads byte for byte.) A value out of range: LOAD DATA LOCAL would store 255 with a
  # warning; restore fails.
  f=$(ls "$out"/*/t.00000.jsonl)
  sed -i 's/"n": *255/"n":256/' "$f"
  grep -q '"n":256' "$f"
  run -65 --separate-stderr db-backup restore --from "$out" --to "$dst_url" --replace --force
  [[ $stderr == *"Out of range value for column 'n'"* ]]
  # With local_infile off at the server: the same rows, by INSERT.
  sed -i 's/"n":256/"n":255/' "$f"
  root_sql "SET GLOBAL local_infile = 0"
  loads=$(com Com_load)
  run -0 --separate-stderr db-backup restore -v --from "$out" --to "$dst_url" --replace --force
  root_sql "SET GLOBAL local_infile = 1"
  [[ $stderr == *"local_infile off: restoring with INSERT"* ]]
  assert_equal "$(com Com_load)" "$loads"
  assert_equal "$(sql "$dst" "$q")" "$(sql "$src" "$q")"
}

@test "verify --against compares with the live database row by row" {
  load_big "$src" 200
  run -0 db-backup dump --from "$src_url" --out "$out"
  run -0 db-backup verify "$out" --against "$src_url"
  assert_output ""
  sql "$src" "UPDATE big SET v = 'x' WHERE id = 7; DELETE FROM big WHERE id = 8; INSERT INTO small VALUES (5, 'five')"
  run -1 --separate-stderr db-backup verify "$out" --against "$src_url"
  assert_equal "$(echo "$output" | wc -l)" 3
  assert_line '{"object":"big","change":"changed","key":{"id":7},"before":{"id":7,"v":"row 7"},"after":{"id":7,"v":"x"}}'
  assert_line '{"object":"big","change":"removed","key":{"id":8},"before":{"id":8,"v":"row 8"}}'
  assert_line '{"object":"small","change":"added","key":{"id":5},"after":{"id":5,"v":"five"}}'
}

@test "diff: rows added, removed and changed, by key and (without a key) as a multiset" {
  load_nasty "$src"
  run -0 db-backup dump --from "$src_url" --out "$out/1"
  sql "$src" "UPDATE nasty SET s = 'changed' WHERE id = 3; DELETE FROM nasty WHERE id = 4;
              INSERT INTO nasty (id) VALUES (5); DELETE FROM nopk WHERE a = 1 LIMIT 1; INSERT INTO nopk VALUES (7, 'new')"
  run -0 db-backup dump --from "$src_url" --out "$out/2"
  run -0 db-backup diff "$(latest "$out/1")" "$(latest "$out/1")"
  assert_output ""
  run -1 --separate-stderr db-backup diff "$(latest "$out/1")" "$(latest "$out/2")"
  assert_equal "$(echo "$output" | wc -l)" 5
  assert_equal "$(echo "$output" | grep -c '"object":"nasty","change":"changed","key":{"id":3}')" 1
  assert_equal "$(echo "$output" | grep -c '"object":"nasty","change":"removed","key":{"id":4}')" 1
  assert_equal "$(echo "$output" | grep -c '"object":"nasty","change":"added","key":{"id":5}')" 1
  assert_line '{"object":"nopk","change":"removed","key":{"a":1,"b":"dup"},"before":{"a":1,"b":"dup"}}'
  assert_line '{"object":"nopk","change":"added","key":{"a":7,"b":"new"},"after":{"a":7,"b":"new"}}'
  run -66 --separate-stderr db-backup diff "$out/1" "$BATS_TEST_TMPDIR/none"
}

@test "lock: a second run on the same DIR exits 75" {
  load_big "$src" 10
  mkdir -p "$out"
  run -75 --separate-stderr flock "$out/.lock" db-backup dump --from "$src_url" --out "$out"
  [[ $stderr == *"another db-backup is working on $out"* ]]
  run -75 --separate-stderr flock "$out/.lock" db-backup prune "$out" --keep-last 1
  run -0 db-backup dump --from "$src_url" --out "$out"
}

@test "permissions 0700/0600 and no password in files, logs or metrics" {
  load_nasty "$src"
  secret=$MARIADB_PASSWORD
  run -0 --separate-stderr db-backup dump -v --from "mysql://envkit:$secret@127.0.0.1:$MARIADB_PORT/$src" \
    --out "$out" --metrics-file "$BATS_TEST_TMPDIR/m.prom" --compress gzip
  [[ $stderr == *"password"* ]]  # the warning that argv showed one...
  [[ $stderr != *"$secret"* ]]   # ...without repeating it
  b=$(latest "$out")
  assert_equal "$(stat -c %a "$out")" 700
  assert_equal "$(stat -c %a "$b")" 700
  for f in "$b"/*; do assert_equal "$(stat -c %a "$f")" 600; done
  ! grep -rqa -- "$secret" "$out" "$BATS_TEST_TMPDIR/m.prom"
  grep -q '"source": "mysql://envkit:\*\*\*@' "$b/manifest.json"
  grep -q '^envkit_db_backup_last_success_timestamp_seconds [0-9]' "$BATS_TEST_TMPDIR/m.prom"
  grep -q '^envkit_db_backup_last_success_bytes [1-9]' "$BATS_TEST_TMPDIR/m.prom"
}

@test "hostile table and column names cannot inject SQL" {
  sql "$src" "CREATE TABLE victim (id INT PRIMARY KEY); INSERT INTO victim VALUES (1);
    CREATE TABLE \`x\`\`; DROP TABLE victim; --\` (\`a'); DROP TABLE victim; --\` INT PRIMARY KEY, \`../../etc\` TEXT);
    INSERT INTO \`x\`\`; DROP TABLE victim; --\` VALUES (1, 'safe');
    CREATE TABLE \`../escape\` (id INT PRIMARY KEY); INSERT INTO \`../escape\` VALUES (2);"
  run -0 db-backup dump --from "$src_url" --out "$out" --tables 'x`; DROP TABLE victim; --,../escape,victim'
  b=$(latest "$out")
  ! compgen -G "$out/escape*"
  [[ $(ls "$b" | wc -l) -eq 4 ]]  # manifest + three data files, all inside the backup
  run -0 db-backup restore --from "$out" --to "$dst_url"
  assert_equal "$(sql "$dst" 'SELECT COUNT(*) FROM victim')" 1
  assert_equal "$(sql "$src" 'SELECT COUNT(*) FROM victim')" 1
  assert_equal "$(sql "$dst" 'SELECT `../../etc` FROM `x``; DROP TABLE victim; --`')" safe
  run -66 --separate-stderr db-backup dump --from "$src_url" --out "$out" --tables 'nosuch'
}

@test "without RELOAD: one connection, one transaction, a warning and the manifest says so" {
  load_big "$src" 3000
  root_sql "DROP USER IF EXISTS 'noreload'@'%'; CREATE USER 'noreload'@'%' IDENTIFIED BY 'pw';
            GRANT SELECT, SHOW VIEW ON \`$src\`.* TO 'noreload'@'%';"
  MYSQL_PWD=pw ENVKIT_DB_BACKUP_TEST_PAUSE=$BATS_TEST_TMPDIR/go \
    db-backup dump --from "mysql://noreload@127.0.0.1:$MARIADB_PORT/$src" --out "$out" --threads 4 \
    --chunk-rows 1000 2>"$BATS_TEST_TMPDIR/err" 3>&- &
  pid=$!
  for _ in $(seq 100); do [[ -e $BATS_TEST_TMPDIR/go.ready ]] && break; sleep 0.1; done
  sql "$src" "INSERT INTO small VALUES (3, 'late')"
  touch "$BATS_TEST_TMPDIR/go"
  wait "$pid"
  grep -q "no RELOAD privilege" "$BATS_TEST_TMPDIR/err"
  b=$(latest "$out")
  grep -q '"method": "single-transaction"' "$b/manifest.json"
  grep -q '"consistent": true' "$b/manifest.json"
  grep -q 'no RELOAD privilege' "$b/manifest.json"
  assert_equal "$(manifest_rows "$b" small)" 2
  assert_equal "$(manifest_rows "$b" big)" 3000
}

@test "--tables, --exclude and --where" {
  load_big "$src" 100
  run -0 db-backup dump --from "$src_url" --out "$out/a" --exclude small --where 'id <= 10'
  b=$(latest "$out/a")
  assert_equal "$(manifest_rows "$b" big)" 10
  ! grep -q '"name": "small"' "$b/manifest.json"
  run -0 db-backup dump --from "$src_url" --out "$out/b" --tables small
  b=$(latest "$out/b")
  ! grep -q '"name": "big"' "$b/manifest.json"
}

@test "prune keeps what grandfather-father-son says, --dry-run removes nothing" {
  for n in 20261101T000000Z 20261115T120000Z 20261120T080000Z 20261121T080000Z 20261121T200000Z 20261122T010000Z; do
    mkdir -p "$out/$n" && echo '{}' >"$out/$n/manifest.json"
  done
  mkdir -p "$out/20261122T020000Z"  # incomplete: never counted, never pruned by prune
  run -0 db-backup prune "$out" --keep-last 2 --keep-daily 3 --dry-run
  assert_line '{"name":"20261101T000000Z","action":"would-remove","reasons":[]}'
  assert_line '{"name":"20261121T200000Z","action":"keep","reasons":["last","daily"]}'
  [[ -d $out/20261101T000000Z ]]
  run -0 db-backup prune "$out" --keep-last 2 --keep-daily 3 --keep-weekly 3
  assert_line '{"name":"20261121T080000Z","action":"remove","reasons":[]}'
  assert_line '{"name":"20261122T010000Z","action":"keep","reasons":["last","daily","weekly"]}'
  assert_equal "$(ls "$out" | tr '\n' ' ')" "20261101T000000Z 20261115T120000Z 20261120T080000Z 20261121T200000Z 20261122T010000Z 20261122T020000Z "
}

@test "daemon: --every with --keep-last and --metrics-file; SIGTERM leaves no half backup" {
  load_big "$src" 3000
  ENVKIT_DB_BACKUP_THROTTLE_MS=20 db-backup dump --from "$src_url" --out "$out" --every 1s --keep-last 2 \
    --metrics-file "$BATS_TEST_TMPDIR/m.prom" 3>&- &
  pid=$!
  for _ in $(seq 150); do
    [[ $(compgen -G "$out/2*/manifest.json" | wc -l) -ge 2 && -e $BATS_TEST_TMPDIR/m.prom ]] && break
    sleep 0.1
  done
  sleep 1.5
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  assert_equal "$rc" 0
  ! compgen -G "$out/.tmp-*"
  n=$(compgen -G "$out/2*" | wc -l)
  [[ $n -eq 2 ]] || { ls "$out"; false; }
  run -0 db-backup verify "$out"
  grep -q '^envkit_db_backup_last_run_success 1' "$BATS_TEST_TMPDIR/m.prom"
}

@test "the binlog position and GTID of the snapshot are recorded when the server has a binlog" {
  BINLOG_EXTRA_CONF=$'log-bin=mysql-bin\nserver-id=7' start_mariadb binlog
  mariadb_for binlog -e "CREATE DATABASE b; GRANT ALL ON b.* TO 'envkit'@'%';
    CREATE TABLE b.t (id INT PRIMARY KEY); INSERT INTO b.t VALUES (1), (2);"
  read -r file pos < <(mariadb_for binlog -N -B -e "SHOW MASTER STATUS" | cut -f1,2)
  gtid=$(mariadb_for binlog -N -B -e "SELECT @@gtid_binlog_pos")
  [[ -n $file && -n $gtid ]]
  run -0 db-backup dump --from "mysql://envkit@127.0.0.1:$BINLOG_PORT/b" --out "$out"
  b=$(latest "$out")
  grep -q "\"binlog_file\": \"$file\"" "$b/manifest.json"
  grep -q "\"binlog_position\": $pos" "$b/manifest.json"
  grep -q "\"gtid\": \"$gtid\"" "$b/manifest.json"
  stop_mariadb binlog
}
