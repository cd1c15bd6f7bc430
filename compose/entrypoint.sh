#!/bin/sh
# Every process started from this image needs VEIL_SECRET_KEY. Without it, settings would generate a key inside
# the container: lost whenever the container is replaced, and different in web and worker.
set -eu
if [ -z "${VEIL_SECRET_KEY:-}" ]; then
    echo "veil: set VEIL_SECRET_KEY (at least 32 random characters), e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(50))'" >&2
    exit 64
fi
exec "$@"
