#!/bin/sh
# Fill in the nginx configuration and run nginx in the foreground.
set -eu
cert=$TLS_CERT_FILE
key=$TLS_KEY_FILE
if [ ! -r "$cert" ] || [ ! -r "$key" ]; then
  echo "No certificate at $cert / $key: using a self-signed one (browsers will warn)." >&2
  mkdir -p /run/amsw-tls
  cert=/run/amsw-tls/self-signed.crt
  key=/run/amsw-tls/self-signed.key
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$(hostname)" \
    -keyout "$key" -out "$cert" 2>/dev/null
fi
sed -e "s|@UPSTREAM@|$UPSTREAM|" -e "s|@LISTEN_PORT@|$LISTEN_PORT|" \
  -e "s|@TLS_CERT@|$cert|" -e "s|@TLS_KEY@|$key|" \
  /etc/nginx/amsw.conf.template >/etc/nginx/nginx.conf
exec nginx -g 'daemon off;'
