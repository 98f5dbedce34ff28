# Start the Debian PostgreSQL cluster on 127.0.0.1 and export STRAWFIRE_TEST_POSTGRES_URL (sourced).
PG_VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q "^${PG_VERSION} main"; then
  pg_createcluster "$PG_VERSION" main
fi
pg_ctlcluster "$PG_VERSION" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -q && break
  sleep 1
done
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='strawfire'\" | grep -q 1 || psql -q -c \"CREATE ROLE strawfire LOGIN PASSWORD 'strawfire' CREATEDB\""
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='strawfire_test'\" | grep -q 1 || psql -q -c \"CREATE DATABASE strawfire_test OWNER strawfire\""
export STRAWFIRE_TEST_POSTGRES_URL="postgresql+psycopg://strawfire:strawfire@127.0.0.1:5432/strawfire_test"
