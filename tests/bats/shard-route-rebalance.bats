#!/usr/bin/env bats
# shard-route rebalance: A-M/N-Z -> A-F/G-Z on MongoDB (the test server's replica sets rsA and
# rsB), MariaDB and Redis shards, killed with SIGKILL at random moments of every phase and run
# again: every document once, unchanged, on the shard the new map names, and no key ever
# missing from every shard in between.
# shellcheck disable=SC2154,SC2153 # stderr from `run --separate-stderr`; <P>_URL from start_*

bats_require_minimum_version 1.5.0

load ../lib/test_helper

setup_file() {
  start_mongo rsa --replica-set rsA
  start_mongo rsb --replica-set rsB
  start_mongo db3
  start_mariadb m1
  start_mariadb m2
  start_redis r1
  start_redis r2
}

teardown_file() {
  stop_all_servers
}

# maps KIND: old.yaml (A-M on the first shard, N-Z on the second) and new.yaml (A-F, G-Z)
# for KIND mongo, mariadb or redis, in $BATS_TEST_TMPDIR.
maps() {
  # Other scripts (Ωmega) go to db3 on MongoDB, to the first shard elsewhere.
  local first second third='' other=s1
  case $1 in
    mongo) first=${RSA_URL%/*}/shop?replicaSet=rsA second=${RSB_URL%/*}/shop?replicaSet=rsB
      third="  s3: $DB3_URL/shop" other=s3 ;;
    mariadb) first=$M1_URL second=$M2_URL ;;
    redis) first=$R1_URL second=$R2_URL ;;
  esac
  local split
  for split in M:old F:new; do
    cat > "$BATS_TEST_TMPDIR/${split#*:}.yaml" <<YAML
shards:
  s1: $first
  s2: $second
$third
namespaces:
  products:
    key: name
    strategy: first-letter
    ranges:
      - {from: A, to: ${split%:*}, shard: s1}
      - {from: $(tr 'A-Y' 'B-Z' <<<"${split%:*}"), to: Z, shard: s2}
    letters: {"Ñ": s2}
    digits: s1
    empty: s1
    other: $other
YAML
  done
}

# 10,000 products, accented and lower-case names among them; a third of them move.
catalogue() {
  python3 -c '
import json
first = ["ábaco", "Ñandú", "zapallo", "Mango", "nuez", "éclair", "Ωmega", "42 ", "kiwi", "Tomate", "gato", "Hielo"]
for i in range(10000):
    print(json.dumps({"name": first[i % 12] + str(i), "price": i % 97, "i": i}, ensure_ascii=False))
' > "$BATS_TEST_TMPDIR/products.jsonl"
  jq -c . "$BATS_TEST_TMPDIR/products.jsonl" | sort > "$BATS_TEST_TMPDIR/want"
}

# Every document of the catalogue once, unchanged, where MAP says: verify finds nothing out
# of place, and the documents on the shards are exactly the catalogue.
all_once() {
  local map=$1
  shard-route verify --map "$map" -n products >"$BATS_TEST_TMPDIR/verify.out" || {
    echo "verify: $(head -3 "$BATS_TEST_TMPDIR/verify.out")"
    return 1
  }
  shard-route find --map "$map" -n products | jq -c 'del(._id)' | sort >"$BATS_TEST_TMPDIR/got"
  diff "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got" >"$BATS_TEST_TMPDIR/diff" || {
    echo "documents differ from the catalogue: $(grep -c '^<' "$BATS_TEST_TMPDIR/diff") missing, $(grep -c '^>' "$BATS_TEST_TMPDIR/diff") extra"
    return 1
  }
}

# Every key of the catalogue is on some shard (the maps name the same stores).
no_key_missing() {
  local n
  n=$(shard-route find --map "$BATS_TEST_TMPDIR/new.yaml" -n products | jq -r .name | sort -u | wc -l)
  [[ $n == 10000 ]] || {
    echo "only $n of 10000 keys on any shard"
    return 1
  }
}

phase_rank() {
  case $1 in copy) echo 0 ;; verify) echo 1 ;; switch) echo 2 ;; delete) echo 3 ;; *) echo 4 ;; esac
}

# The phase a state file names ("copy" while there is none yet).
state_phase() {
  local text
  text=$(cat "$1" 2>/dev/null) || text=''
  [[ $text =~ \"phase\":\"([a-z]+)\" ]] && echo "${BASH_REMATCH[1]}" || echo copy
}

# Runs rebalance old.yaml new.yaml --batch BATCH --pause PAUSE KILLS times, each killed with SIGKILL at a
# random moment: in the first third 0-49 ms after it started (in its copy phase, which a
# resumed run starts over), then 0-99 ms after its state file reached verify, then delete
# (waited for up to 60 s). After each kill no key may be missing from every shard. Sets
# `landed` (kills that met a running process) and `phases` (where they landed).
kill_loop() {
  local kills=$1 batch=$2 pause=$3 state=$BATS_TEST_TMPDIR/new.yaml.rebalance
  local i want pid tries
  landed=0 phases=''
  for ((i = 0; i < kills; i++)); do
    want=copy
    ((i >= kills / 3)) && want=verify
    ((i >= 2 * kills / 3)) && want=delete
    shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" -n products --batch "$batch" \
      --pause "$pause" >/dev/null 2>>"$BATS_TEST_TMPDIR/rebalance.err" &
    pid=$!
    if [[ $want == copy ]]; then
      sleep "0.0$(printf '%02d' $((RANDOM % 50)))"
    else
      for ((tries = 0; tries < 3000; tries++)); do
        kill -0 "$pid" 2>/dev/null || break
        (($(phase_rank "$(state_phase "$state")") >= $(phase_rank $want))) && break
        sleep 0.02
      done
      sleep "0.0$(printf '%02d' $((RANDOM % 100)))"
    fi
    if kill -9 "$pid" 2>/dev/null; then
      landed=$((landed + 1))
      phases+=" $(state_phase "$state")"
    fi
    wait "$pid" || true
    no_key_missing
  done
}

# KIND: mongo, mariadb or redis; BATCH: documents a write and PAUSE the wait after each, so
# that each phase lasts long enough for kills to land inside it (3333 documents move: 334
# batches of 10 with 2 ms pauses make a phase last at least 0.67 s, however fast the store).
rebalance_killed_and_resumed() {
  local kind=$1 batch=$2 pause=$3
  maps "$kind"
  catalogue
  shard-route put --map "$BATS_TEST_TMPDIR/old.yaml" -n products < "$BATS_TEST_TMPDIR/products.jsonl"
  all_once "$BATS_TEST_TMPDIR/old.yaml"
  run -0 --separate-stderr shard-route plan "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" -n products
  moving=$(jq .moved <<<"$output")
  [[ $moving == 3333 ]] || fail "plan: $output"  # Mango, kiwi, gato, Hielo: 4 of 12 names

  kill_loop 10 "$batch" "$pause"
  echo "# $kind: $landed of 10 kills met a running rebalance, in:$phases" >&3
  ((landed >= 7)) || fail "only $landed kills landed:$phases"
  [[ $phases == *delete* && $phases =~ copy|verify ]] || fail "kills did not land both before and after the switch:$phases"

  run -0 --separate-stderr shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" -n products
  jq -e '.phase == "done" and .kept == 0 and .unkeyed == 0' <<<"$output"
  run -0 all_once "$BATS_TEST_TMPDIR/new.yaml"
  # Run again: done, nothing to do.
  run -0 --separate-stderr shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" -n products
  jq -e '.resumed_at == "done" and .copied == 0 and .deleted == 0' <<<"$output"

  # The check fails when a document is lost, and when one is on two shards.
  key=$(grep -m1 -o '"gato[0-9]*"' "$BATS_TEST_TMPDIR/products.jsonl" | tr -d '"')
  shard-route get --map "$BATS_TEST_TMPDIR/new.yaml" -n products "$key" > "$BATS_TEST_TMPDIR/one"
  shard-route del --map "$BATS_TEST_TMPDIR/new.yaml" -n products "$key"
  run -1 all_once "$BATS_TEST_TMPDIR/new.yaml"
  assert_output --partial "1 missing, 0 extra"
  jq -c 'del(._id)' "$BATS_TEST_TMPDIR/one" | shard-route put --map "$BATS_TEST_TMPDIR/new.yaml" -n products
  run -0 all_once "$BATS_TEST_TMPDIR/new.yaml"
  jq -c 'del(._id)' "$BATS_TEST_TMPDIR/one" | shard-route put --map "$BATS_TEST_TMPDIR/old.yaml" -n products
  run -1 all_once "$BATS_TEST_TMPDIR/new.yaml"
  assert_output --partial "verify:"
}

@test "MongoDB: rebalance A-M/N-Z -> A-F/G-Z killed 10 times, resumed: every document once, in the right shard" {
  rebalance_killed_and_resumed mongo 100 5ms
}

@test "MariaDB shards: the same rebalance, killed and resumed" {
  [[ $M1_PASSWORD == "$M2_PASSWORD" ]] || fail "the two MariaDB servers need one password here"
  export MYSQL_PWD=$M1_PASSWORD
  rebalance_killed_and_resumed mariadb 10 2ms
}

@test "Redis shards: the same rebalance, killed and resumed" {
  rebalance_killed_and_resumed redis 10 2ms
}

@test "rebalance: --switch replaces the live map, and a resumed switch keeps what was written through it; another run's state is refused (78); a held state is 75" {
  maps redis
  redis-cli -p "$R1_PORT" FLUSHALL >/dev/null
  redis-cli -p "$R2_PORT" FLUSHALL >/dev/null
  seq 1 50 | awk '{printf "{\"name\": \"gato%d\"}\n{\"name\": \"abaco%d\"}\n", $1, $1}' |
    shard-route put --map "$BATS_TEST_TMPDIR/old.yaml" -n products
  cp "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/live.yaml"
  state=$BATS_TEST_TMPDIR/state.json
  # Another process holding the state file's lock: 75, nothing done.
  run -75 --separate-stderr flock "$state.lock" shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" \
    -n products --state "$state" --switch "$BATS_TEST_TMPDIR/live.yaml"
  [[ $stderr == *"is locked by another process"* ]] || fail "$stderr"
  cmp "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/live.yaml"
  run -0 --separate-stderr shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" \
    -n products --state "$state" --switch "$BATS_TEST_TMPDIR/live.yaml"
  jq -e '.copied == 50 and .verified == 100 and .deleted == 50 and .moves == [{"from": "s1", "to": "s2", "documents": 50}]' <<<"$output"
  cmp "$BATS_TEST_TMPDIR/new.yaml" "$BATS_TEST_TMPDIR/live.yaml"
  run -0 --separate-stderr shard-route verify --map "$BATS_TEST_TMPDIR/live.yaml" -n products
  jq -e '.phase == "done"' "$state"
  # Killed after installing the map, before the state said so: the run that resumes finds
  # MAP already NEW and must not copy the old shard's documents over what writers wrote
  # through it since; it deletes the old copies.
  jq -c '.phase = "switch"' "$state" >"$state.tmp" && mv "$state.tmp" "$state"
  echo '{"name": "gato7", "v": "old"}' | shard-route put --map "$BATS_TEST_TMPDIR/old.yaml" -n products
  echo '{"name": "gato7", "v": "new"}' | shard-route put --map "$BATS_TEST_TMPDIR/live.yaml" -n products
  run -0 --separate-stderr shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" \
    -n products --state "$state" --switch "$BATS_TEST_TMPDIR/live.yaml"
  jq -e '.resumed_at == "switch" and .verified == 0 and .repaired == 0 and .deleted == 1' <<<"$output"
  run -0 shard-route get --map "$BATS_TEST_TMPDIR/live.yaml" -n products gato7
  assert_output '{"name": "gato7", "v": "new"}'
  run -0 --separate-stderr shard-route verify --map "$BATS_TEST_TMPDIR/live.yaml" -n products
  # The same state file with other maps: refused before anything is touched.
  run -78 --separate-stderr shard-route rebalance "$BATS_TEST_TMPDIR/new.yaml" "$BATS_TEST_TMPDIR/old.yaml" -n products --state "$state"
  [[ $stderr == *"$state: the state of another rebalance"* ]] || fail "$stderr"
  run -64 --separate-stderr shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml"
  [[ $stderr == *"rebalance: give the OLD and the NEW map"* ]] || fail "$stderr"
  run -64 --separate-stderr shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" --limit 3
}

@test "writes go on through --switch's map during a rebalance: each lands once, where the map of its time says" {
  maps redis
  redis-cli -p "$R1_PORT" FLUSHALL >/dev/null
  redis-cli -p "$R2_PORT" FLUSHALL >/dev/null
  # 9,000 products, two thirds of them (Hielo, gato) moving from s1 to s2.
  seq 1 3000 | awk '{printf "{\"name\": \"gato%d\", \"v\": 0}\n{\"name\": \"Hielo%d\", \"v\": 0}\n{\"name\": \"abaco%d\", \"v\": 0}\n", $1, $1, $1}' \
    >"$BATS_TEST_TMPDIR/written.jsonl"
  shard-route put --map "$BATS_TEST_TMPDIR/old.yaml" -n products <"$BATS_TEST_TMPDIR/written.jsonl"
  cp "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/live.yaml"
  shard-route rebalance "$BATS_TEST_TMPDIR/old.yaml" "$BATS_TEST_TMPDIR/new.yaml" -n products --batch 10 \
    --switch "$BATS_TEST_TMPDIR/live.yaml" >"$BATS_TEST_TMPDIR/rebalance.out" &
  rebalance=$!
  for ((i = 0; i < 500; i++)); do [[ -e $BATS_TEST_TMPDIR/live.yaml.lock ]] && break; sleep 0.01; done
  # The writer: batches of 20 through the live map until the rebalance is done (300 at
  # most), each updating moving products and adding new ones; every batch logged in order.
  for ((b = 1; b <= 300; b++)); do
    kill -0 "$rebalance" 2>/dev/null || break
    for ((j = 0; j < 10; j++)); do
      printf '{"name": "gato%d", "v": %d}\n{"name": "kiwi-%d-%d", "v": %d}\n' $((RANDOM % 3000 + 1)) "$b" "$b" "$j" "$b"
    done >"$BATS_TEST_TMPDIR/batch"
    shard-route put --map "$BATS_TEST_TMPDIR/live.yaml" -n products <"$BATS_TEST_TMPDIR/batch"
    cat "$BATS_TEST_TMPDIR/batch" >>"$BATS_TEST_TMPDIR/written.jsonl"
  done
  wait "$rebalance"
  echo "# $((b - 1)) batches written during the rebalance" >&3
  ((b > 3)) || fail "the rebalance ended before the writer got going"
  cmp "$BATS_TEST_TMPDIR/new.yaml" "$BATS_TEST_TMPDIR/live.yaml"
  jq -e '.kept == 0' "$BATS_TEST_TMPDIR/rebalance.out"
  # What must be there: the last version of each product, once, where the new map says.
  python3 -c '
import json, sys
last = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    last[d["name"]] = d
for d in last.values():
    print(json.dumps(d, separators=(",", ":")))' "$BATS_TEST_TMPDIR/written.jsonl" | sort >"$BATS_TEST_TMPDIR/want"
  run -0 --separate-stderr shard-route verify --map "$BATS_TEST_TMPDIR/new.yaml" -n products
  shard-route find --map "$BATS_TEST_TMPDIR/new.yaml" -n products | jq -c . | sort >"$BATS_TEST_TMPDIR/got"
  diff "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
}
