#!/bin/bash
# MariaDB for the data and control tables. Creates the datadir on first start; on every start
# (re)creates MARIADB_DATABASE and MARIADB_USER with MARIADB_PASSWORD, so rotating the password
# in the env file and restarting applies it.
set -euo pipefail
: "${MARIADB_DATABASE:?}" "${MARIADB_USER:?}" "${MARIADB_PASSWORD:?}"
datadir=/var/lib/mysql
if [[ ! -d "$datadir/mysql" ]]; then
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db --auth-root-authentication-method=socket >/dev/null
fi
# SQL string and identifier literals. The server reads backslashes as escapes (its default
# sql_mode), so they are doubled before the quotes are.
sql_quote() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\'\'}"; }
ident_quote() { printf '`%s`' "${1//\`/\`\`}"; }
init=/run/mysqld/init.sql
install -o mysql -m 600 /dev/null "$init"
cat >"$init" <<SQL
CREATE DATABASE IF NOT EXISTS $(ident_quote "$MARIADB_DATABASE") CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS $(sql_quote "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_quote "$MARIADB_PASSWORD");
ALTER USER $(sql_quote "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_quote "$MARIADB_PASSWORD");
GRANT ALL PRIVILEGES ON $(ident_quote "$MARIADB_DATABASE").* TO $(sql_quote "$MARIADB_USER")@'%';
SQL
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 \
    --init-file="$init" --skip-name-resolve --character-set-server=utf8mb4 \
    --innodb-buffer-pool-size="${MARIADB_BUFFER_POOL:-256M}"
