#!/bin/sh
# Sends one request to a Matomete topic, signed as docs/merchants.md
# ("Signing requests") describes, with kcat, openssl and coreutils. The value
# goes as one message whatever it holds (line breaks too); it always has a key.
#
#   MATOMETE_BOOTSTRAP_SERVERS=host:9092 \
#   MATOMETE_KEY_ID=mk-… MATOMETE_SECRET=<64 hex digits> \
#   examples/signed-producer.sh matomete.charges L0000001 '{"type":"charge",…}'
#
# The secret is read from the environment, never from the command line (which
# other users can see in the process list).
set -eu
if [ $# -ne 3 ]; then
    echo "usage: $0 TOPIC KEY VALUE  (with MATOMETE_BOOTSTRAP_SERVERS, MATOMETE_KEY_ID, MATOMETE_SECRET set)" >&2
    exit 64
fi
topic=$1 key=$2 value=$3
: "${MATOMETE_BOOTSTRAP_SERVERS:?}" "${MATOMETE_KEY_ID:?}" "${MATOMETE_SECRET:?}"
timestamp=$(($(date +%s) * 1000))
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
text=$(printf 'matomete-request-v1\n%s\n%s\n%s\n%s\n%s' \
    "$topic" "$timestamp" "$MATOMETE_KEY_ID" "$(sha256 "$key")" "$(sha256 "$value")")
mac=$(printf '%s' "$text" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$MATOMETE_SECRET" | sed 's/^.*= //')
# A file argument is one message to kcat, line breaks and all (standard input would be split at each).
file=$(mktemp)
trap 'rm -f "$file"' EXIT
printf '%s' "$value" >"$file"
kcat -P -b "$MATOMETE_BOOTSTRAP_SERVERS" -t "$topic" -k "$key" \
    -H "matomete-key-id=$MATOMETE_KEY_ID" -H "matomete-timestamp=$timestamp" -H "matomete-signature=v1=$mac" "$file"
echo "sent to $topic, key $key, signed with $MATOMETE_KEY_ID at $timestamp"
echo "its result comes back on your own results topic, matomete.merchant.<your merchant id>.results (docs/merchants.md, \"Your topics\")"
