#!/usr/bin/env bash
# Creates a local development CA and certificates for Claude Network:
#   DIR/ca.pem, ca.key            the CA (keep ca.key private)
#   DIR/server.pem, server.key    for the services (SAN: localhost, 127.0.0.1, and $CNET_CERT_HOSTS)
#   DIR/client.pem, client.key    for agents/tools under mutual TLS
# Usage: tools/make_certs.sh DIR   (keys are written 0600)
set -euo pipefail
dir="${1:?usage: make_certs.sh DIR}"
mkdir -p "$dir"
cd "$dir"
umask 077
san="DNS:localhost,IP:127.0.0.1"
for h in ${CNET_CERT_HOSTS:-}; do san="$san,DNS:$h"; done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -keyout ca.key -out ca.pem -subj "/CN=Claude Network dev CA" >/dev/null 2>&1
for who in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$who.key" -out "$who.csr" -subj "/CN=claude-network-$who" >/dev/null 2>&1
  ext="subjectAltName=$san"
  [ "$who" = client ] && ext="extendedKeyUsage=clientAuth"
  openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile <(echo "$ext") -out "$who.pem" >/dev/null 2>&1
  rm -f "$who.csr"
done
chmod 0644 ca.pem server.pem client.pem
echo "wrote $dir/{ca,server,client}.{pem,key}"
