#!/usr/bin/env bash
# iceberg-rest-catalog PORT WAREHOUSE_DIR CATALOG_DB_FILE: Apache Iceberg's REST catalog server
# (its test fixture, RESTCatalogServer) in the foreground: a JDBC catalog on a SQLite file, the
# table metadata written by HadoopFileIO into a local warehouse folder. Ready when
# GET http://127.0.0.1:PORT/v1/config answers 200. Its classpath is ICEBERG_REST_LIB (the stack
# cache's iceberg-rest-<version>/lib, provisioned by provision.sh iceberg-rest).
# Every other CATALOG_* variable becomes a catalog property (CATALOG_FOO__BAR_BAZ -> foo-bar.baz).
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 PORT WAREHOUSE_DIR CATALOG_DB_FILE" >&2; exit 2; }
lib="${ICEBERG_REST_LIB:?names the folder of the server jars}"
compgen -G "$lib/iceberg-open-api-*-test-fixtures.jar" >/dev/null \
  || { echo "no Iceberg REST server in $lib: run tests/stack/provision.sh iceberg-rest" >&2; exit 1; }
mkdir -p "$2" "$(dirname "$3")"
warehouse="$(cd "$2" && pwd -P)"
db="$(cd "$(dirname "$3")" && pwd -P)/$(basename "$3")"
export CATALOG_REST_PORT="$1"                 # rest.port (it binds every interface)
export CATALOG_WAREHOUSE="file://$warehouse"  # an absolute URI: locations are file:///…
export CATALOG_URI="jdbc:sqlite:$db"          # the fixture's default is an in-memory database
export CATALOG_CATALOG__IMPL=org.apache.iceberg.jdbc.JdbcCatalog
export CATALOG_JDBC_SCHEMA__VERSION=V1
export CATALOG_IO__IMPL=org.apache.iceberg.hadoop.HadoopFileIO
exec java -Xms32m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dorg.slf4j.simpleLogger.defaultLogLevel="${LOG_LEVEL:-warn}" \
  -cp "$lib/*" org.apache.iceberg.rest.RESTCatalogServer
