#!/bin/sh
# Grants each party of Matomete its Kafka access, and no more: the commands
# `matomete topics acls` prints, run with kafka-acls.sh. Arguments go to it:
#   ./acls.sh                                   the carrier's parties
#   ./acls.sh --merchant m-shop --merchants-only    one merchant added
# Needs BOOTSTRAP (a broker) and ADMIN_CONFIG (the admin's client settings).
set -eu
: "${BOOTSTRAP:?set BOOTSTRAP to a broker, host:port}"
: "${ADMIN_CONFIG:?set ADMIN_CONFIG to the admin client properties file}"
export BOOTSTRAP ADMIN_CONFIG
matomete topics acls "$@" | sh -eu
