#!/usr/bin/env bats
# compose/ as shipped: every compose file validates with Debian's docker-compose, every
# envkit command line in them (commands and healthchecks) passes the command's own
# --check-config, and the servers' own configs (nginx stream tunnel, init scripts) check out.
# No Docker engine here: nothing is started.

bats_require_minimum_version 1.5.0

setup() {
  load ../lib/test_helper
  COMPOSE=$ENVKIT_SOURCE_DIR/compose
  CHECK=$ENVKIT_SOURCE_DIR/tests/lib/compose_check.py
}

# Every compose file of every environment: the YAML files with a top-level services: key.
compose_files() {
  grep -l '^services:' "$1"/*/*.yaml
}

# The env file of an environment (its example.env), as docker-compose --env-file takes it.
env_file_of() {
  echo "$(dirname "$1")/example.env"
}

@test "every compose file validates with docker-compose config" {
  local f n=0
  for f in $(compose_files "$COMPOSE"); do
    run -0 docker-compose --env-file "$(env_file_of "$f")" -f "$f" config -q
    ((++n))
  done
  ((n >= 2))
}

@test "every envkit command line in every compose file passes --check-config" {
  local f failed=0
  for f in $(compose_files "$COMPOSE"); do
    run python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$(env_file_of "$f")" "$f"
    echo "$output"
    ((status == 0)) || failed=1
    refute_output --partial FAIL
  done
  ((failed == 0))
  # iot-weather's four: the tunnel check and its healthcheck, the sensor and the backups.
  run -0 python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$COMPOSE/iot-weather/example.env" \
    "$COMPOSE/iot-weather/local.yaml"
  assert_line --partial 'ok   '"$COMPOSE"'/iot-weather/local.yaml sensor-push command: sensor-push --every 15s'
  assert_line --partial 'db-backup command: db-backup dump --every 10m'
  assert_line --partial 'tunnel-check healthcheck: proxy-check -q'
  assert_line '4 command lines checked, 0 failed'
}

@test "the check fails on an option a command does not have, a wrong program, an undeclared secret" {
  cp -r "$COMPOSE/iot-weather" "$BATS_TEST_TMPDIR/env"
  local local_yaml=$BATS_TEST_TMPDIR/env/local.yaml env=$BATS_TEST_TMPDIR/env/example.env
  cp "$local_yaml" "$BATS_TEST_TMPDIR/orig.yaml"
  # An option sensor-push does not have.
  sed -i 's|^      - 15s$|      - 15s\n      - --bogus-option|' "$local_yaml"
  run -1 python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$env" "$local_yaml"
  assert_line --partial "sensor-push command: sensor-push --every 15s --bogus-option"
  assert_output --partial "unrecognised option '--bogus-option'"
  # A misspelt command in the envkit image.
  cp "$BATS_TEST_TMPDIR/orig.yaml" "$local_yaml"
  sed -i 's|^      - db-backup$|      - db_backup|' "$local_yaml"
  run -1 python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$env" "$local_yaml"
  assert_output --partial "'db_backup' is not an envkit command"
  # A password file the service has no secret for.
  cp "$BATS_TEST_TMPDIR/orig.yaml" "$local_yaml"
  sed -i 's|^    secrets: \[backup_password\]$|    secrets: [weather_password]|' "$local_yaml"
  run -1 python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$env" "$local_yaml"
  assert_output --partial "cannot read the --password-file file"
  # A wrong option value and a bad URL parameter.
  cp "$BATS_TEST_TMPDIR/orig.yaml" "$local_yaml"
  sed -i 's|^      - 10m$|      - ten minutes|; s|table=readings&create=true|create=true|' "$local_yaml"
  run -1 python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$env" "$local_yaml"
  assert_output --partial "db-backup command"
  assert_output --partial "name the table"
  # A password variable's file (MYSQL_PWD_FILE) the service has no secret for.
  cp -r "$COMPOSE/bookstore" "$BATS_TEST_TMPDIR/bookstore"
  local bookstore=$BATS_TEST_TMPDIR/bookstore/compose.yaml
  sed -i 's|^    secrets: \[rabbitmq_password, shop_password\]$|    secrets: [rabbitmq_password]|' "$bookstore"
  run -1 python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$BATS_TEST_TMPDIR/bookstore/example.env" "$bookstore"
  assert_output --partial "orders-relay command"
  assert_output --partial "MYSQL_PWD_FILE"
  # And docker-compose itself refuses a file without CLOUD_HOST.
  run -1 docker-compose -f "$BATS_TEST_TMPDIR/orig.yaml" config -q
  assert_output --partial CLOUD_HOST
}

@test "iot-weather: 3306 is not published, the tunnel is, the workers wait for a healthy tunnel" {
  local cloud local_
  cloud=$(docker-compose --env-file "$COMPOSE/iot-weather/example.env" -f "$COMPOSE/iot-weather/cloud.yaml" config)
  local_=$(docker-compose --env-file "$COMPOSE/iot-weather/example.env" -f "$COMPOSE/iot-weather/local.yaml" config)
  run -0 python3 - "$cloud" "$local_" <<'PY'
import sys, yaml
cloud, local = (yaml.safe_load(t)["services"] for t in sys.argv[1:3])
assert "ports" not in cloud["mysql"], cloud["mysql"].get("ports")
assert cloud["mysql"]["environment"]["TZ"] == "America/Bogota"
assert cloud["mysql"]["image"].startswith("mysql:8.0")
ports = [str(p.get("published", p) if isinstance(p, dict) else p) for p in cloud["tunnel"]["ports"]]
assert any("33060" in p for p in ports), ports
assert cloud["tunnel"]["depends_on"]["mysql"]["condition"] == "service_healthy"
for worker in ("sensor-push", "db-backup", "dashboard"):
    assert local[worker]["depends_on"]["tunnel-check"]["condition"] == "service_healthy", worker
assert local["tunnel-check"]["healthcheck"]["test"][1] == "proxy-check"
assert "15s" in local["sensor-push"]["command"]
assert any(v.get("target") == "/var/backups/envkit" for v in local["db-backup"]["volumes"]
           if isinstance(v, dict)) or any("/var/backups/envkit" in str(v) for v in local["db-backup"]["volumes"])
limits = local["dashboard"]["deploy"]["resources"]["limits"]
assert float(limits["cpus"]) == 2 and str(limits["memory"]).upper() in ("2G", "2GB", "2048M"), limits
print("ok")
PY
  assert_output ok
}

@test "iot-weather: the nginx stream config passes nginx -t; the init script passes shellcheck" {
  # Debian's nginx has the stream module as a dynamic module and no 'mysql' host: load the
  # module and point the upstream at loopback, the rest is the file as shipped.
  local d=$BATS_TEST_TMPDIR/nginx
  mkdir -p "$d/logs"
  { echo 'load_module /usr/lib/nginx/modules/ngx_stream_module.so;'
    sed 's|server mysql:3306;|server 127.0.0.1:3306;|; s|^pid .*|pid '"$d"'/nginx.pid;|' \
      "$COMPOSE/iot-weather/nginx/nginx.conf"; } >"$d/nginx.conf"
  run -0 nginx -t -p "$d" -c "$d/nginx.conf"
  assert_output --partial 'test is successful'
  # and it can fail: a directive nginx does not know.
  sed -i 's|proxy_timeout 1h;|proxy_timeout 1h; proxy_bogus on;|' "$d/nginx.conf"
  run -1 nginx -t -p "$d" -c "$d/nginx.conf"
  run -0 shellcheck "$COMPOSE"/*/initdb/*.sh
}

@test "bookstore: the TLS front end's nginx config passes nginx -t" {
  local d=$BATS_TEST_TMPDIR/nginx
  mkdir -p "$d/logs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=front \
    -keyout "$d/tls_key" -out "$d/tls_certificate" 2>/dev/null
  # The secrets where compose mounts them, the app's replicas on loopback, a pid file here.
  sed "s|/run/secrets/|$d/|; s|server app:8080;|server 127.0.0.1:8080;|; s|^pid .*|pid $d/nginx.pid;|" \
    "$COMPOSE/bookstore/nginx/nginx.conf" >"$d/nginx.conf"
  run -0 nginx -t -p "$d" -c "$d/nginx.conf"
  assert_output --partial 'test is successful'
}

@test "bookstore has Swarm deploy sections; product-shards initiates rsA and rsB; weather-tweets provisions Grafana" {
  run -0 python3 - "$COMPOSE" <<'PY'
import json, os, sys, yaml
root = sys.argv[1]
book = yaml.safe_load(open(os.path.join(root, "bookstore/compose.yaml")))["services"]
assert book["app"]["deploy"]["replicas"] >= 2
for name, s in book.items():
    assert "deploy" in s and "restart_policy" in s["deploy"], name
assert book["db"]["deploy"]["placement"]["constraints"]
shards = yaml.safe_load(open(os.path.join(root, "product-shards/compose.yaml")))["services"]
for first, rs in (("a1", "rsA"), ("b1", "rsB")):
    assert f"_id: '{rs}'" in " ".join(shards[first]["healthcheck"]["test"]), first
    for member in (first[0] + "1", first[0] + "2", first[0] + "3"):
        assert shards[member]["command"][-3:-1] == ["--replSet", rs] or rs in shards[member]["command"], member
tweets = os.path.join(root, "weather-tweets/grafana")
ds = yaml.safe_load(open(os.path.join(tweets, "provisioning/datasources/valkey.yaml")))
assert ds["datasources"][0]["type"] == "redis-datasource"
json.load(open(os.path.join(tweets, "dashboards/weather-tweets.json")))
print("ok")
PY
  assert_output ok
}

@test "weather-tweets: Grafana's panels read the hashes the consumers keep; no password goes to Valkey" {
  run -0 python3 - "$COMPOSE/weather-tweets" <<'PY'
import json, os, sys, urllib.parse, yaml
root = sys.argv[1]
s = yaml.safe_load(open(os.path.join(root, "compose.yaml")))["services"]
written = set()
for broker in ("kafka", "rabbitmq"):
    cmd = s["consume-" + broker]["command"]
    sink = cmd[cmd.index("--to") + 1]
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(sink).query)
    prefix = q["aggregate-prefix"][0]
    assert prefix == "agg:%s:" % broker, prefix
    specs = q["aggregate"][0].split(",")
    assert {"count:municipality", "count:weather", "mean:temperature:municipality",
            "mean:humidity:municipality"} <= set(specs), specs
    written |= {prefix + spec for spec in specs}
dash = json.load(open(os.path.join(root, "grafana/dashboards/weather-tweets.json")))
read = {t["keyName"] for p in dash["panels"] for t in p["targets"]}
assert read and read <= written, sorted(read - written)
# --password-file gives its password to every URL, Valkey's too (it has none: AUTH fails).
check = s["brokers-check"]
for line in (check["command"], check["healthcheck"]["test"]):
    assert "--password-file" not in line, line
assert check["environment"]["ENVKIT_AMQP_PASSWORD_FILE"] == "/run/secrets/rabbitmq_password"
assert s["locust"]["depends_on"]["ingest"]["condition"] == "service_healthy"
print("ok")
PY
  assert_output ok
}

@test "task-race: reconcile reads the file the server writes and the histories the clients write" {
  local f=$COMPOSE/task-race/compose.yaml env=$COMPOSE/task-race/example.env
  run -0 python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$env" "$f"
  assert_line --partial 'server command: race-probe serve'
  assert_line --partial 'reconcile command: race-probe reconcile'
  assert_line '5 command lines checked, 0 failed'
  # The same volumes on both sides: the server's data is what reconcile reads back, the
  # clients' results are its histories, and reconcile waits for both clients to finish.
  run -0 python3 - "$f" <<'PY'
import sys, yaml
s = yaml.safe_load(open(sys.argv[1]))["services"]
assert "tasks:/var/lib/envkit" in s["server"]["volumes"] and "/var/lib/envkit/tasks.json" in s["server"]["command"]
assert "tasks:/tasks:ro" in s["reconcile"]["volumes"] and "results:/results:ro" in s["reconcile"]["volumes"]
assert "file:/tasks/tasks.json" in s["reconcile"]["command"]
for c in ("client-a", "client-b"):
    assert s["reconcile"]["depends_on"][c]["condition"] == "service_completed_successfully"
    assert s[c]["depends_on"]["server"]["condition"] == "service_healthy"
    assert "results:/var/lib/envkit" in s[c]["volumes"]
    assert "/var/lib/envkit/" + c + ".jsonl" in s[c]["command"] and "/results/" + c + ".jsonl" in s["reconcile"]["command"]
print("ok")
PY
  # Without the results volume, the histories' directory does not exist: the check says so.
  sed 's|    volumes: \[tasks:/tasks:ro, results:/results:ro\]|    volumes: [tasks:/tasks:ro]|' "$f" >"$BATS_TEST_TMPDIR/compose.yaml"
  run -1 python3 "$CHECK" --bin "$ENVKIT_BUILD_DIR/bin" --env-file "$env" "$BATS_TEST_TMPDIR/compose.yaml"
  assert_output --partial "cannot reach the history's directory"
}
