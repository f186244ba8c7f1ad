#!/bin/sh
# Make the files docker-compose.yml reads as secrets, each only if missing: the PostgreSQL and
# Redis passwords, the session signing key, the credential key, and (unless you put your own
# certificate there first) a self-signed TLS certificate for the proxy.
#   docker/make-secrets.sh [folder]        default: $AMSW_SECRETS or ./secrets
#   AMSW_HOSTNAME=wizard.example.com       the name in the self-signed certificate
# Run it as root: the files then belong to the app's uid (10001), mode 0400. Run as another
# user, they stay that user's, mode 0444, and the folder (0700) is what protects them.
set -eu
dir=${1:-${AMSW_SECRETS:-./secrets}}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
made() { echo "made $dir/$1"; }
random() { [ -s "$dir/$1" ] || { openssl rand -hex "$2" >"$dir/$1"; made "$1"; }; }
random postgres_password 24
random redis_password 24
random secret_key 48
# The credential key is a Fernet key: 32 random bytes in URL-safe base64.
[ -s "$dir/credential_key" ] || {
  openssl rand 32 | openssl base64 -A | tr '+/' '-_' >"$dir/credential_key"
  echo >>"$dir/credential_key"
  made credential_key
}
if [ ! -s "$dir/tls_cert" ] || [ ! -s "$dir/tls_key" ]; then
  name=${AMSW_HOSTNAME:-$(hostname -f 2>/dev/null || hostname)}
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=$name" \
    -addext "subjectAltName=DNS:$name" -keyout "$dir/tls_key" -out "$dir/tls_cert" 2>/dev/null
  made "tls_cert and tls_key (self-signed for $name; put your own certificate there instead)"
fi
if [ "$(id -u)" -eq 0 ]; then
  chown 10001:10001 "$dir"/*
  chmod 0400 "$dir"/*
else
  chmod 0444 "$dir"/*
fi
