#!/bin/sh
# Keystone for docker-compose.yml's `keystone` profile: SQLite and fernet keys in the
# `keystone` volume, the admin account (project admin) and Glance's service user
# (`glance`, project `service`, role admin) as the install guide makes them, served by
# uWSGI on port 5000. Register Tessera's image endpoint once it runs (deploy/README.md).
set -eu
data=${KEYSTONE_DATA:-/var/lib/keystone}
conf=$data/keystone.conf
public_url=${KEYSTONE_PUBLIC_URL:-http://keystone:5000/v3/}
cat > "$conf" <<CONF
[database]
connection = sqlite:///$data/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = $data/fernet-keys
[credential]
key_repository = $data/credential-keys
[cache]
# in-process: one uWSGI process below, so it stays coherent
enabled = true
backend = oslo_cache.dict
CONF
manage() { keystone-manage --config-file "$conf" "$@"; }
me=$(id -un)
manage db_sync
[ -d "$data/fernet-keys" ] || manage fernet_setup --keystone-user "$me" --keystone-group "$(id -gn)"
[ -d "$data/credential-keys" ] || manage credential_setup --keystone-user "$me" --keystone-group "$(id -gn)"
manage bootstrap --bootstrap-password "${KEYSTONE_ADMIN_PASSWORD:?set it}" \
    --bootstrap-admin-url "$public_url" --bootstrap-internal-url "$public_url" \
    --bootstrap-public-url "$public_url" --bootstrap-region-id RegionOne
manage bootstrap --bootstrap-username glance --bootstrap-password "${GLANCE_PASSWORD:?set it}" \
    --bootstrap-project-name service --bootstrap-role-name admin
export OS_KEYSTONE_CONFIG_FILES="$conf"
exec uwsgi --http-socket "0.0.0.0:${KEYSTONE_PORT:-5000}" --module keystone.wsgi.api:application \
    --master --processes 1 --threads 1 --enable-threads --lazy-apps --die-on-term
