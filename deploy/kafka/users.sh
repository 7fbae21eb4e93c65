#!/bin/sh
# Creates (or updates) the SCRAM-SHA-512 users of Matomete's parties, each
# password read from a file named as the user in DIRECTORY (never on the
# command line of this script). With users named, only those.
#   ./users.sh /run/secrets/kafka-passwords
#   ./users.sh /run/secrets/kafka-passwords merchant-m-shop
# Needs BOOTSTRAP and ADMIN_CONFIG, like acls.sh.
set -eu
: "${BOOTSTRAP:?set BOOTSTRAP to a broker, host:port}"
: "${ADMIN_CONFIG:?set ADMIN_CONFIG to the admin client properties file}"
directory=${1:?give the directory of password files}
shift
if [ $# -eq 0 ]; then
    set -- matomete-charge-worker matomete-cancellation-worker matomete-billing-cycle-worker matomete-collection-worker \
        matomete-outbox-relay matomete-merchant-site matomete-support-desk matomete-operator line-system billing-system finance
fi
for user in "$@"; do
    password=$(cat "$directory/$user")
    kafka-configs.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --alter \
        --add-config "SCRAM-SHA-512=[iterations=8192,password=$password]" --entity-type users --entity-name "$user"
done
