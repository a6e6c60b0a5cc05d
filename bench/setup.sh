# Shared by bench/run and bench/abuse: starts SeaweedFS (ports 29201-29205),
# recreates the PostgreSQL database rf_bench, builds and starts the release
# server on 127.0.0.1:29080 with its settings from the environment (and a
# second one on 29081 that scans uploads with the tests' clamd), and
# exports the BENCH_* coordinates. Sourced, not run.
. scripts/services.sh

WORK="$PWD/target/bench"
BASE=29200
KEY=bench-key
SECRET=bench-secret-key
BUCKET=bench
PORT=29080
rm -rf "$WORK" && mkdir -p "$WORK"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

ensure_postgres
ensure_weed_binary
start_weed "$WORK/s3" "$BASE" "$KEY" "$SECRET"
pids+=("$(cat "$WORK/s3/weed.pid")")
for _ in $(seq 1 40); do make_bucket $((BASE + 1)) "$BUCKET" && break; sleep 0.5; done

# FORCE: a server of an earlier run may still be closing its connections.
psql "$PG_URL" -qc "DROP DATABASE IF EXISTS rf_bench WITH (FORCE)" >/dev/null
psql "$PG_URL" -qc "CREATE DATABASE rf_bench" >/dev/null
DB_URL="${PG_URL%/*}/rf_bench"

cargo build --release --locked -p reportfiles -p rf-bench

export DATABASE_URL="$DB_URL"
export STORAGE_URL="s3://$BUCKET"
export AWS_ENDPOINT_URL="http://127.0.0.1:$((BASE + 4))"
export AWS_ACCESS_KEY_ID="$KEY" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_ALLOW_HTTP=true
export JWT_HS256_SECRET="bench-secret-bench-secret-bench-secret"
export MAX_UPLOAD_BYTES=$((2 << 30))
export RUST_LOG=warn LOG_JSON=false

# start_server PORT NAME [VAR=VALUE...]: the release server on PORT, its log
# in $WORK/NAME.log, with these settings beside the ones above; sets
# STARTED_PID once /readyz answers.
start_server() {
  local port=$1 name=$2
  shift 2
  (cd "$WORK" && exec env BIND_ADDR="127.0.0.1:$port" "$@" "$OLDPWD/target/release/reportfiles" serve >"$WORK/$name.log" 2>&1) &
  pids+=($!)
  STARTED_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$WORK/$name.log"; exit 1; }
}

start_server "$PORT" server
SERVER_PID=$STARTED_PID
# A second server on the same database and bucket that scans every upload
# with the tests' clamd (ensure_clamd: StreamMaxLength 1100M, the test
# signatures), for the upload with scanning on.
ensure_clamd
start_server $((PORT + 1)) server-scanning AV_SCAN=required CLAMD_ADDR="$TEST_CLAMD_ADDR" \
  MAX_UPLOAD_BYTES=$((1100 << 20))
SCAN_PID=$STARTED_PID

target/release/reportfiles user create --subject bench-admin --email bench@example.gov \
  --role SYSTEM_ADMIN --approve >/dev/null
BENCH_TOKEN=$(target/release/reportfiles token --sub bench-admin --ttl 86400)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "server: release build, pid $SERVER_PID; S3: SeaweedFS $(weed version 2>/dev/null | head -n1 | awk '{print $3}'); PostgreSQL $(psql "$PG_URL" -Atqc 'SHOW server_version')"
export BENCH_SERVER="http://127.0.0.1:$PORT" BENCH_PID="$SERVER_PID" BENCH_TOKEN BENCH_BUCKET="$BUCKET"
export BENCH_WEED_PID="$(cat "$WORK/s3/weed.pid")"
export BENCH_SCAN_SERVER="http://127.0.0.1:$((PORT + 1))" BENCH_SCAN_PID="$SCAN_PID"
# Whichever clamd answers on the port (it may be one an earlier run started).
BENCH_CLAMD_PID=$(ss -Hltnp "sport = :$CLAMD_PORT" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
export BENCH_CLAMD_PID
