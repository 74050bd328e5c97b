#!/bin/sh
# user-data of the bookstore app instances (terraform/modules/bookstore-asg): installs
# envkit and its cron jobs. cloud-init writes the settings to /etc/envkit/user-data.env and
# the backup password to /etc/envkit/backup.pw, then runs this script; running it again
# changes nothing. Every cron line is checked with --check-config before cron gets it.
# ENVKIT_ROOT=DIR does it all under DIR instead of / (the package then goes in with
# dpkg --root, its libraries being the host's): tests/bats/terraform.bats runs it so.
set -eu

root=${ENVKIT_ROOT:-}
etc=$root/etc/envkit
log() { echo "envkit-user-data: $*" >&2; }
fail() {
  log "error: $*"
  exit 1
}

[ -r "$etc/user-data.env" ] || fail "$etc/user-data.env: no settings"
# shellcheck source=/dev/null
. "$etc/user-data.env"
for name in ENVKIT_DEB_URL APP_PORT HEALTH_PATH HEALTH_INTERVAL HEALTH_TIMEOUT HEALTHY_THRESHOLD \
  UNHEALTHY_THRESHOLD DATABASE_HOST DATABASE_NAME BACKUP_SCHEDULE BACKUP_KEEP_DAILY; do
  eval "value=\${$name:-}"
  # shellcheck disable=SC2154 # set by the eval above
  [ -n "$value" ] || fail "$name is not set in $etc/user-data.env"
done
[ -r "$etc/backup.pw" ] || fail "$etc/backup.pw: no backup password"

# 1. envkit itself.
download=$(mktemp -d "${TMPDIR:-/tmp}/envkit.XXXXXX")
trap 'rm -rf "$download"' EXIT
deb=$download/envkit.deb # apt installs a file by a path that ends in .deb
curl -fsSL --retry 5 --retry-connrefused --max-time 300 -o "$deb" "$ENVKIT_DEB_URL" ||
  fail "cannot fetch $ENVKIT_DEB_URL"
if [ -z "$root" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb"
else
  mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
  [ -e "$root/var/lib/dpkg/status" ] || : >"$root/var/lib/dpkg/status"
  dpkg --root="$root" --log=/dev/null --force-depends --force-not-root -i "$deb" >"$download/dpkg.log" 2>&1 || {
    cat "$download/dpkg.log" >&2
    fail "dpkg could not install $ENVKIT_DEB_URL under $root"
  }
fi
bin=$root/usr/bin
log "installed $("$bin/proxy-check" --version)"

# 2. Where the jobs keep state, backups and metrics for node_exporter's textfile collector.
state=$root/var/lib/envkit
backups=$root/var/backups/envkit
metrics=$root/var/lib/prometheus/node-exporter
install -d -m 0750 "$state" "$backups"
install -d -m 0755 "$metrics" "$root/etc/cron.d"

# 3. The jobs. proxy-check makes the target group's own health check (same port, path,
# status, timeout and thresholds, the thresholds kept across runs in its state file), at the
# check's interval rounded up to cron's minutes.
minutes=$(((HEALTH_INTERVAL + 59) / 60))
if [ "$minutes" -le 1 ]; then every='* * * * *'; else every="*/$minutes * * * *"; fi
proxy_check="$bin/proxy-check -q --timeout ${HEALTH_TIMEOUT}s --healthy-threshold $HEALTHY_THRESHOLD"
proxy_check="$proxy_check --unhealthy-threshold $UNHEALTHY_THRESHOLD --state-file $state/app.state"
proxy_check="$proxy_check --metrics-file $metrics/bookstore_app.prom 'http://127.0.0.1:$APP_PORT$HEALTH_PATH?status=200'"
db_backup="$bin/db-backup dump -q --from 'mysql://backup@$DATABASE_HOST:3306/$DATABASE_NAME'"
db_backup="$db_backup --password-file $etc/backup.pw --out $backups/$DATABASE_NAME --keep-daily $BACKUP_KEEP_DAILY"
db_backup="$db_backup --metrics-file $metrics/bookstore_backup.prom"
for line in "$proxy_check" "$db_backup"; do
  sh -c "$line --check-config" || fail "refused by its command: $line"
done

cron=$root/etc/cron.d/envkit
tmp=$(mktemp "$root/etc/cron.d/.envkit.XXXXXX") # a dot: cron ignores it until renamed
cat >"$tmp" <<CRON
# Written by envkit-user-data (terraform/modules/bookstore-asg); runs again change nothing.
SHELL=/bin/sh
PATH=$bin:/usr/sbin:/usr/bin:/sbin:/bin
# The app as the load balancer sees it, metrics for node_exporter.
$every root $proxy_check
# The shop database to this instance's disk.
$BACKUP_SCHEDULE root $db_backup
CRON
chmod 0644 "$tmp"
mv -f "$tmp" "$cron"
log "cron jobs in $cron"
