#!/usr/bin/env bats
# shard-route: maps checked with file:line, explain with its folding, and put/get/del/find/count
# on MongoDB (the test server's single-member replica sets), MariaDB and Redis shards.
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

# The product-shards map: products by first letter, A-M on rsA, N-Z on rsB, users on db3.
shop_map() {
  cat > "$BATS_TEST_TMPDIR/shop.yaml" <<YAML
shards:
  db1: ${RSA_URL%/*}/shop?replicaSet=rsA
  db2: ${RSB_URL%/*}/shop?replicaSet=rsB
  db3: ${DB3_URL}/shop
default: db3
namespaces:
  products:
    key: name
    strategy: first-letter
    ranges:
      - {from: A, to: M, shard: db1}
      - {from: N, to: Z, shard: db2}
    letters: {"Ñ": db2}
    digits: db1
    empty: db1
    other: db3
YAML
  echo "$BATS_TEST_TMPDIR/shop.yaml"
}

# Documents in DB.COLL on one MongoDB server, counted by pymongo (not by shard-route).
mongo_count() {
  local url=$1 db=$2 coll=$3
  URL=$url "$(_servers_mongo_python)" -c '
import os, pymongo
c = pymongo.MongoClient(os.environ["URL"], serverSelectionTimeoutMS=5000, directConnection=True)
print(c[os.sys.argv[1]][os.sys.argv[2]].count_documents({}))' "$db" "$coll"
}

@test "--help lists the subcommands; the man page carries the folding table" {
  run -0 shard-route --help
  assert_output --partial "shard-route explain --map FILE"
  assert_output --partial "shard-route find --map FILE"
  man=$ENVKIT_SOURCE_DIR/man/shard-route.1
  for letter in ß æ ð đ ħ ı ĸ ł ŋ ø œ þ ŧ ƒ; do
    grep -q "^$letter" "$man" || fail "the man page's folding table lacks $letter"
  done
}

@test "a bad map is refused with file:line and the reason (78), a missing one is 66, a bad command line 64" {
  map=$(shop_map)
  run -0 --separate-stderr shard-route explain --check-config --map "$map"
  assert_output ""
  sed -i 's/from: N, to: Z/from: O, to: Z/' "$map"
  run -78 --separate-stderr shard-route explain --check-config --map "$map"
  assert_equal "$stderr" "shard-route: error: $map:11: letter N is in no range of namespace 'products'"
  run -78 --separate-stderr shard-route explain --map "$map" -n products x
  run -66 --separate-stderr shard-route explain --map "$BATS_TEST_TMPDIR/none.yaml" x
  run -64 --separate-stderr shard-route frobnicate --map "$map"
  run -64 --separate-stderr shard-route explain
  # --pause belongs to rebalance, and takes a duration.
  run -64 --separate-stderr shard-route get --map "$map" --pause 2ms k
  assert_equal "${stderr_lines[0]}" "shard-route: error: --pause does not apply to get"
  run -64 --separate-stderr shard-route rebalance "$map" "$map" --pause 2parsecs
  assert_equal "${stderr_lines[0]}" "shard-route: error: the argument ('2parsecs') for option '--pause' is invalid"
}

@test "explain: folded first letters land where the map says, from argv and from stdin" {
  map=$(shop_map)
  run -0 --separate-stderr shard-route explain --map "$map" -n products ábaco Ábaco Ñandú nuez 42 "" Ωmega Æble
  assert_output "$(printf '%s\n' \
    $'ábaco\tproducts\tdb1' $'Ábaco\tproducts\tdb1' $'Ñandú\tproducts\tdb2' $'nuez\tproducts\tdb2' \
    $'42\tproducts\tdb1' $'\tproducts\tdb1' $'Ωmega\tproducts\tdb3' $'Æble\tproducts\tdb1')"
  run -0 --separate-stderr shard-route explain --map "$map" -n users bob
  assert_output $'bob\tusers\tdb3'
  # stdin: CRLF line ends and a last line without a newline.
  run -0 --separate-stderr bash -c "printf 'Zanahoria\r\nmango' | shard-route explain --map '$map' -n products"
  assert_output $'Zanahoria\tproducts\tdb2\nmango\tproducts\tdb1'
  # Keys longer than an output block (1 MiB) between short ones, each line whole and in order.
  { echo apple; head -c 3000000 /dev/zero | tr '\0' B; echo; echo zed; head -c 1048570 /dev/zero | tr '\0' n; echo; } |
    shard-route explain --map "$map" -n products | awk -F'\t' '{print length($1), $3}' >"$BATS_TEST_TMPDIR/long.txt"
  [[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/long.txt") == "5 db1 3000000 db1 3 db2 1048570 db2 " ]]
  run -0 --separate-stderr shard-route explain --map "$map" -n products -v Ábaco
  assert_output $'Ábaco\tproducts\tdb1\tfirst-letter: first character \'á\' -> A (decomposition), in A-M (line 11)'
}

@test "put 10,000 products on MongoDB: each on its shard, then get, del, find --sort --limit, count" {
  map=$(shop_map)
  python3 -c '
import json
first = ["ábaco", "Ñandú", "zapallo", "Mango", "nuez", "éclair", "Ωmega", "42 ", "kiwi", "Tomate"]
for i in range(10000):
    print(json.dumps({"name": first[i % 10] + str(i), "price": i % 97, "i": i}, ensure_ascii=False))
' > "$BATS_TEST_TMPDIR/products.jsonl"
  run -0 --separate-stderr shard-route put --map "$map" -n products < "$BATS_TEST_TMPDIR/products.jsonl"
  # Where explain says, counted on each server by pymongo: A-M 5000, N-Z 4000, other 1000.
  cut -d'"' -f4 "$BATS_TEST_TMPDIR/products.jsonl" | shard-route explain --map "$map" -n products |
    cut -f3 | sort | uniq -c | awk '{print $2, $1}' > "$BATS_TEST_TMPDIR/expected"
  assert_equal "$(cat "$BATS_TEST_TMPDIR/expected")" $'db1 5000\ndb2 4000\ndb3 1000'
  assert_equal "$(mongo_count "$RSA_URL" shop products)" 5000
  assert_equal "$(mongo_count "$RSB_URL" shop products)" 4000
  assert_equal "$(mongo_count "$DB3_URL" shop products)" 1000
  # verify scans all 10,000 where they are: nothing out of place.
  run -0 --separate-stderr shard-route verify --map "$map" -n products -v
  assert_output ""
  [[ $stderr == *"10000 documents on 3 shards: 10000 where the map says, 0 misplaced"* ]] || fail "$stderr"
  # put again: upserts by key, nothing doubles. (The test server finds a document by
  # scanning its collection, so a slice of the catalogue keeps this test short.)
  head -300 "$BATS_TEST_TMPDIR/products.jsonl" > "$BATS_TEST_TMPDIR/again.jsonl"
  run --separate-stderr shard-route put --map "$map" -n products --batch 100 < "$BATS_TEST_TMPDIR/again.jsonl"
  [[ $status == 0 ]] || fail "put again: $status $stderr"
  run -0 shard-route count --map "$map" -n products
  assert_output 10000
  run -0 --separate-stderr shard-route get --map "$map" -n products Ñandú1
  assert_output --partial '"name" : "Ñandú1"'
  run -0 --separate-stderr shard-route count --map "$map" -n products '{"price": {"$lt": 3}}'
  assert_output "$(python3 -c 'print(sum(1 for i in range(10000) if i % 97 < 3))')"
  run -0 --separate-stderr shard-route find --map "$map" -n products '{"price": 96}' --sort=-i --limit 3
  assert_equal "$(jq -c .i <<<"$output" | tr '\n' ' ')" "9990 9893 9796 "
  run -0 --separate-stderr shard-route del --map "$map" -n products Ñandú1 zapallo2
  run -1 --separate-stderr shard-route get --map "$map" -n products Ñandú1
  assert_output ""
  [[ $stderr == *"no document with key 'Ñandú1' on db2"* ]] || fail "$stderr"
  run -0 shard-route count --map "$map" -n products
  assert_output 9998
}

@test "find and count: a down shard fails the command, --partial gives the others' results" {
  map=$(shop_map)
  printf '{"name": "apple"}\n{"name": "nut"}\n' | shard-route put --map "$map" -n products
  dead=$(free_port)
  sed -i "s|db3: .*|db3: mongodb://127.0.0.1:$dead/shop|" "$map"
  run -69 --separate-stderr shard-route find --map "$map" -n products --connect-timeout 1s
  assert_output ""
  [[ $stderr == *"shard db3"* ]] || fail "$stderr"
  run -0 --separate-stderr shard-route count --map "$map" -n products --partial --connect-timeout 1s '{"name": {"$in": ["apple", "nut"]}}'
  assert_output 2
  [[ $stderr == *"partial result: shard db3"* ]] || fail "$stderr"
  # A filter on the key touches its shard only: the dead one is not asked.
  run -0 --separate-stderr shard-route find --map "$map" -n products '{"name": "apple"}'
  assert_output --partial '"apple"'
}

# Two namespaces on MariaDB and Redis shards; with "wrong", a map that sends every key of each
# to its second shard (for planting misplaced documents).
kv_map() {
  if [[ ${1:-} == wrong ]]; then
    cat > "$BATS_TEST_TMPDIR/wrong.yaml" <<YAML
shards:
  m1: $M1_URL
  m2: $M2_URL
  r1: $R1_URL
  r2: $R2_URL
namespaces:
  items: {key: id, strategy: jump, shards: [m2]}
  carts: {key: id, strategy: slots, slots: {r2: 0-16383}}
YAML
    echo "$BATS_TEST_TMPDIR/wrong.yaml"
    return
  fi
  cat > "$BATS_TEST_TMPDIR/kv.yaml" <<YAML
shards:
  m1: $M1_URL
  m2: $M2_URL
  r1: $R1_URL
  r2: $R2_URL
namespaces:
  items:
    key: id
    strategy: jump
    shards: [m1, m2]
  carts:
    key: id
    strategy: slots
    slots: {r1: 0-8191, r2: 8192-16383}
YAML
  echo "$BATS_TEST_TMPDIR/kv.yaml"
}

@test "MariaDB and Redis shards: put, get, find with a filter and a sort, count, del" {
  map=$(kv_map)
  [[ $M1_PASSWORD == "$M2_PASSWORD" ]] || fail "the two MariaDB servers need one password here"
  export MYSQL_PWD=$M1_PASSWORD
  for ns in items carts; do
    seq 1 500 | awk '{printf "{\"id\": \"k%d\", \"n\": %d, \"s\": \"é%d\"}\n", $1, $1, $1 % 7}' |
      shard-route put --map "$map" -n $ns
    run -0 shard-route count --map "$map" -n $ns
    assert_output 500
    run -0 shard-route get --map "$map" -n $ns k42
    assert_output '{"id": "k42", "n": 42, "s": "é0"}'
    run -0 shard-route find --map "$map" -n $ns '{"n": {"$gte": 495}}' --sort=-n --limit 2
    assert_output $'{"id": "k500", "n": 500, "s": "é3"}\n{"id": "k499", "n": 499, "s": "é2"}'
    run -0 shard-route count --map "$map" -n $ns '{"s": "é0"}'
    assert_output 71
    run -0 shard-route del --map "$map" -n $ns k42
    run -0 shard-route count --map "$map" -n $ns
    assert_output 499
  done
  # Both shards hold part of each namespace.
  run -0 mariadb_for m1 -N -e 'SELECT COUNT(*) > 100 FROM envkit.items'
  assert_output 1
  run -0 mariadb_for m2 -N -e 'SELECT COUNT(*) > 100 FROM envkit.items'
  assert_output 1
}

@test "put: each shard's batches land in input order while the shards write at once; a shard that fails ends it, named" {
  map=$(kv_map)
  export MYSQL_PWD=$M1_PASSWORD
  # 300 versions of one key, a batch each, between documents for both shards: the last read is kept.
  for ns in items carts; do
    seq 1 300 | awk '{printf "{\"id\": \"same\", \"v\": %d}\n{\"id\": \"o%d\"}\n", $1, $1}' |
      shard-route put --map "$map" -n $ns --batch 1
    run -0 shard-route get --map "$map" -n $ns same
    assert_output '{"id": "same", "v": 300}'
    run -0 shard-route count --map "$map" -n $ns '{"id": {"$in": ["o1", "o150", "o300"]}}'
    assert_output 3
  done
  # m2 refuses connections. 1,000 documents for m1 come first (10 batches, the last still in
  # flight when m2's first batch fails): the put ends unavailable (69) naming m2, and every one
  # of m1's batches read before the failure is written.
  sed "s|^  m2: .*|  m2: mysql://envkit@127.0.0.1:1/envkit|" "$map" >"$BATS_TEST_TMPDIR/down.yaml"
  seq 1 3000 | sed 's/^/d/' | shard-route explain --map "$map" -n items >"$BATS_TEST_TMPDIR/placed.tsv"
  { awk -F'\t' '$3 == "m1"' "$BATS_TEST_TMPDIR/placed.tsv" | head -1000
    awk -F'\t' '$3 == "m2"' "$BATS_TEST_TMPDIR/placed.tsv" | head -500
  } | awk -F'\t' '{printf "{\"id\": \"%s\"}\n", $1}' >"$BATS_TEST_TMPDIR/down.jsonl"
  run -69 --separate-stderr shard-route put --map "$BATS_TEST_TMPDIR/down.yaml" -n items --batch 100 <"$BATS_TEST_TMPDIR/down.jsonl"
  [[ $stderr == *"shard m2: cannot connect"* ]] || fail "the error does not name m2: $stderr"
  run -0 mariadb_for m1 -N -e "SELECT COUNT(*) FROM envkit.items WHERE k LIKE 'd%'"
  assert_output 1000
}

@test "verify (MariaDB and Redis shards): nothing after a put; every planted misplaced copy listed, keys on two shards flagged" {
  map=$(kv_map) wrong=$(kv_map wrong)
  [[ $M1_PASSWORD == "$M2_PASSWORD" ]] || fail "the two MariaDB servers need one password here"
  export MYSQL_PWD=$M1_PASSWORD
  gen() { awk '{printf "{\"id\": \"v%d\", \"n\": %d}\n", $1, $1}'; }
  for ns in items carts; do
    mariadb_for m1 -e "DROP TABLE IF EXISTS envkit.$ns" 2>/dev/null || true
    mariadb_for m2 -e "DROP TABLE IF EXISTS envkit.$ns" 2>/dev/null || true
    redis-cli -p "$R1_PORT" FLUSHALL >/dev/null
    redis-cli -p "$R2_PORT" FLUSHALL >/dev/null
    seq 1 300 | gen | shard-route put --map "$map" -n $ns
    run -0 --separate-stderr shard-route verify --map "$map" -n $ns
    assert_output ""
    [ -z "$stderr" ]
    run -0 --separate-stderr shard-route verify --map "$map" -n $ns -v
    assert_output ""
    [[ $stderr == *"300 documents on 2 shards: 300 where the map says, 0 misplaced (0 keys on two shards or more), 0 without a key"* ]] || fail "$stderr"
    # Planted through a map that sends everything to the second shard: copies of v1..v40
    # (those the real map puts on the first shard are then on two shards) and v1001..v1020,
    # which exist nowhere else.
    { seq 1 40; seq 1001 1020; } | gen | shard-route put --map "$wrong" -n $ns
    { seq 1 40; seq 1001 1020; } | sed 's/^/v/' | shard-route explain --map "$map" -n $ns | awk -F'\t' '$3 == "m1" || $3 == "r1" {print $1}' | sort >"$BATS_TEST_TMPDIR/expected"
    want=$(wc -l <"$BATS_TEST_TMPDIR/expected")
    ((want > 10))
    run -1 --separate-stderr shard-route verify --map "$map" -n $ns
    [ "${#lines[@]}" -eq "$want" ]
    diff <(jq -r .key <<<"$output" | sort) "$BATS_TEST_TMPDIR/expected"
    jq -e -s 'all(.[]; .problem == "misplaced" and (.on == "m2" or .on == "r2") and (.belongs == "m1" or .belongs == "r1"))' <<<"$output"
    # Exactly the planted copies of v1..v40 are also on their right shard.
    diff <(jq -r 'select(.on_right_shard_too) | .key' <<<"$output" | sort) <(grep -E '^v([1-9]|[1-3][0-9]|40)$' "$BATS_TEST_TMPDIR/expected")
    jq -e -s 'all(.[]; ((.key | ltrimstr("v") | tonumber) > 1000) == (.on_right_shard_too | not))' <<<"$output"
    # On the second shard the planted copies of its own keys replaced the originals; the
    # first shard's keys are now there twice; v1001..v1020 that belong on the second are new.
    new_first=$(grep -c -E '^v10[0-9][0-9]$' "$BATS_TEST_TMPDIR/expected")
    docs=$((300 + want + 20 - new_first))
    [[ $stderr == *"$docs documents on 2 shards: $((docs - want)) where the map says, $want misplaced ($((want - new_first)) keys on two shards or more)"* ]] || fail "$stderr"
  done
  run -64 --separate-stderr shard-route verify --map "$map" -n items v1
  [[ $stderr == *"verify scans every shard: no arguments"* ]]
}

@test "plan: adding a fifth shard moves about 1/5 of the keys with jump, ketama and rendezvous, 4/5 with modulo" {
  local n
  for n in 4 5; do
    {
      echo "shards:"
      for i in $(seq 1 $n); do echo "  s$i: redis://127.0.0.1:1/$i"; done
      echo "namespaces:"
      echo "  items: {key: id, strategy: jump, shards: [$(seq -s, -f 's%g' 1 $n)]}"
    } >"$BATS_TEST_TMPDIR/m$n.yaml"
  done
  seq 1 100000 | sed 's/^/k/' >"$BATS_TEST_TMPDIR/keys"
  # Counted on a key file: nothing is connected to (the shards' URLs lead nowhere).
  run -0 --separate-stderr shard-route plan "$BATS_TEST_TMPDIR/m4.yaml" "$BATS_TEST_TMPDIR/m5.yaml" --keys "$BATS_TEST_TMPDIR/keys"
  echo "$output" | jq -e '.keys == 100000 and .source == "file:'"$BATS_TEST_TMPDIR"'/keys"'
  # Theory: a consistent hash moves 1/(n+1) of the keys, all onto the new shard; modulo
  # moves all but 1/(n+1) (a key stays when k mod 4 == k mod 5: 1 in 5).
  echo "$output" | jq -e '.fraction > 0.19 and .fraction < 0.21 and ([.moves[] | .to == "s5"] | all) and (.moves | length) == 4'
  echo "$output" | jq -e '[.strategies[] | select(.strategy != "hash") | .fraction > 0.19 and .fraction < 0.21] | all'
  echo "$output" | jq -e '[.strategies[] | select(.strategy == "hash") | .fraction > 0.79 and .fraction < 0.81] | all'
  echo "$output" | jq -e '([.strategies[] | .strategy] | sort) == ["hash", "jump", "ketama", "rendezvous"]'
  echo "$output" | jq -e '(.strategies[] | select(.strategy == "jump") | .moved) == .moved'
  # The same keys from stdin give the same figures.
  run -0 --separate-stderr shard-route plan "$BATS_TEST_TMPDIR/m4.yaml" "$BATS_TEST_TMPDIR/m5.yaml" --keys - <"$BATS_TEST_TMPDIR/keys"
  echo "$output" | jq -e '.source == "stdin" and .fraction > 0.19 and .fraction < 0.21'
  # A map to itself moves nothing.
  run -0 --separate-stderr shard-route plan "$BATS_TEST_TMPDIR/m5.yaml" "$BATS_TEST_TMPDIR/m5.yaml" --keys "$BATS_TEST_TMPDIR/keys"
  echo "$output" | jq -e '.moved == 0 and ([.strategies[] | .moved == 0] | all)'
  run -64 --separate-stderr shard-route plan "$BATS_TEST_TMPDIR/m4.yaml"
  [[ $stderr == *"plan: give the OLD and the NEW map"* ]]
}

@test "plan on the live data (MariaDB shards) counts what a key file of the same keys counts" {
  map=$(kv_map)
  [[ $M1_PASSWORD == "$M2_PASSWORD" ]] || fail "the two MariaDB servers need one password here"
  export MYSQL_PWD=$M1_PASSWORD
  mariadb_for m1 -e "DROP TABLE IF EXISTS envkit.items" 2>/dev/null || true
  mariadb_for m2 -e "DROP TABLE IF EXISTS envkit.items" 2>/dev/null || true
  seq 1 500 | awk '{printf "{\"id\": \"w%d\"}\n", $1}' | shard-route put --map "$map" -n items
  sed 's/strategy: jump/strategy: hash/' "$map" >"$BATS_TEST_TMPDIR/hashed.yaml"
  run -0 --separate-stderr shard-route plan "$map" "$BATS_TEST_TMPDIR/hashed.yaml" -n items
  live=$output
  echo "$live" | jq -e '.source == "live" and .keys == 500 and .moved > 0 and .moved < 500'
  run -0 --separate-stderr shard-route plan "$map" "$BATS_TEST_TMPDIR/hashed.yaml" -n items --keys <(seq 1 500 | sed 's/^/w/')
  [ "$(jq -c '{keys, moved, moves}' <<<"$output")" = "$(jq -c '{keys, moved, moves}' <<<"$live")" ]
}

@test "an unknown or a missing subcommand is a usage error under shard-route's own name" {
  run -64 --separate-stderr shard-route frob --map x.yaml
  assert_equal "$stderr" "$(printf "shard-route: error: unknown subcommand 'frob' (explain, put, get, del, find, count, verify, plan or rebalance)\nTry 'shard-route --help' for more information.")"
  run -64 --separate-stderr shard-route --map x.yaml
  [[ $stderr == "shard-route: error: no subcommand: explain, put, get, del, find, count, verify, plan or rebalance"* ]]
}
