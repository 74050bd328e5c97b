#!/bin/sh
# The mysql image runs this once, when the data directory is new: the backup user with what
# db-backup needs for a consistent snapshot with its binlog position. (MYSQL_USER weather
# already has every privilege on iot.)
set -eu
backup_password=$(head -n 1 /run/secrets/backup_password)
MYSQL_PWD=$(head -n 1 /run/secrets/mysql_root_password)
export MYSQL_PWD
mysql --user=root --protocol=socket <<SQL
CREATE USER IF NOT EXISTS 'backup'@'%' IDENTIFIED BY '$(printf '%s' "$backup_password" | sed "s/'/''/g")';
GRANT SELECT, LOCK TABLES, SHOW VIEW ON iot.* TO 'backup'@'%';
GRANT RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO 'backup'@'%';
SQL
