"""The Swift store's configuration: its options in ``[glance_store]`` with Glance's
names and defaults, Glance's ``swift_store_config_file`` references, and the store they
describe. Apart from services/store/backends/swift.py so that reading the configuration
does not import python-swiftclient into every service."""

from __future__ import annotations

import configparser

from oslo_config import cfg

MiB = 1 << 20

swift_opts = [
    cfg.StrOpt(
        "default_swift_reference",
        default="ref1",
        help="The section of swift_store_config_file that holds the credentials.",
    ),
    cfg.StrOpt(
        "swift_store_config_file",
        help="INI file of Swift credentials, one section per reference (user, key, "
        "auth_address, auth_version, user_domain_id, project_domain_id ...). "
        "When set, it is used instead of swift_store_auth_address/user/key.",
    ),
    cfg.StrOpt(
        "swift_store_auth_address",
        help="The Swift auth (or Keystone) URL, e.g. http://keystone:5000/v3.",
    ),
    cfg.StrOpt(
        "swift_store_user",
        secret=True,
        help="The user: 'project:user' for Keystone, 'account:user' for v1 auth.",
    ),
    cfg.StrOpt("swift_store_key", secret=True, help="The user's password or key."),
    cfg.StrOpt(
        "swift_store_auth_version",
        default="3",
        choices=["1", "2", "3"],
        help="Auth protocol: 1 (Swift's own, e.g. tempauth), 2 or 3 (Keystone).",
    ),
    cfg.BoolOpt(
        "swift_store_auth_insecure",
        default=False,
        help="Do not verify the auth service's TLS certificate.",
    ),
    cfg.StrOpt("swift_store_cacert", help="CA bundle for the auth service and Swift."),
    cfg.StrOpt("swift_store_region", help="Region of the Swift endpoint in the catalog."),
    cfg.StrOpt(
        "swift_store_endpoint_type",
        default="publicURL",
        choices=["publicURL", "adminURL", "internalURL"],
        help="Which catalog endpoint of Swift to use.",
    ),
    cfg.StrOpt(
        "swift_store_service_type",
        default="object-store",
        help="Service type of Swift in the catalog.",
    ),
    cfg.StrOpt(
        "swift_store_container", default="glance", help="The container that holds the images."
    ),
    cfg.BoolOpt(
        "swift_store_create_container_on_put",
        default=False,
        help="Create the container on the first upload if it does not exist.",
    ),
    cfg.IntOpt(
        "swift_store_large_object_size",
        default=5120,
        min=1,
        help="Images larger than this many MiB are stored as segments and a "
        "Static Large Object manifest.",
    ),
    cfg.IntOpt(
        "swift_store_large_object_chunk_size",
        default=200,
        min=1,
        help="Segment size in MiB of large objects.",
    ),
    cfg.IntOpt(
        "swift_store_retry_get_count",
        default=0,
        min=0,
        help="How many times an interrupted download resumes from where it stopped.",
    ),
]


class BadSwiftConfig(ValueError):
    """The Swift store's configuration is incomplete or names a missing reference."""


def load_swift_reference(path: str, name: str, default_auth_version: str = "3") -> dict:
    """The credentials of reference ``name`` in Glance's ``swift_store_config_file``, as
    ``SwiftStore`` keyword arguments."""
    parser = configparser.RawConfigParser()  # raw: a '%' in a key is a '%'
    try:
        with open(path) as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise BadSwiftConfig(f"cannot read swift_store_config_file {path}: {exc}") from exc
    if not parser.has_section(name):
        raise BadSwiftConfig(f"default_swift_reference {name!r} is not a section of {path}")

    def get(option: str) -> str | None:
        value = parser.get(name, option, fallback=None)
        if value and value[0] in "\"'":  # Glance accepts quoted values
            if len(value) == 1 or value[-1] != value[0]:
                raise BadSwiftConfig(f"{path} [{name}] {option}: unclosed quote")
            value = value[1:-1]
        return value

    ref = {option: get(option) for option in ("auth_address", "user", "key")}
    missing = [option for option, value in ref.items() if not value]
    if missing:
        raise BadSwiftConfig(f"{path} [{name}] lacks {', '.join(missing)}")
    ref["auth_version"] = get("auth_version") or default_auth_version
    for kind in ("user", "project"):
        ref[f"{kind}_domain_id"] = get(f"{kind}_domain_id")
        ref[f"{kind}_domain_name"] = get(f"{kind}_domain_name")
        if ref[f"{kind}_domain_id"] is None and ref[f"{kind}_domain_name"] is None:
            ref[f"{kind}_domain_id"] = "default"
    return ref


def swift_store_from_config(conf: cfg.ConfigOpts):
    """The SwiftStore ``conf.glance_store`` describes (``swift_opts`` registered there)."""
    from services.store.backends.swift import SwiftStore

    g = conf.glance_store
    if g.swift_store_config_file:
        credentials = load_swift_reference(
            g.swift_store_config_file, g.default_swift_reference, g.swift_store_auth_version
        )
    else:
        credentials = {
            "auth_address": g.swift_store_auth_address,
            "user": g.swift_store_user,
            "key": g.swift_store_key,
            "auth_version": g.swift_store_auth_version,
        }
        missing = [
            f"swift_store_{k}" for k in ("auth_address", "user", "key") if not credentials[k]
        ]
        if missing:
            raise BadSwiftConfig(
                f"the swift store needs {', '.join(missing)} in "
                "[glance_store] (or swift_store_config_file)"
            )
    return SwiftStore(
        **credentials,
        container=g.swift_store_container,
        create_container_on_put=g.swift_store_create_container_on_put,
        large_object_size=g.swift_store_large_object_size * MiB,
        large_object_chunk_size=g.swift_store_large_object_chunk_size * MiB,
        region=g.swift_store_region,
        endpoint_type=g.swift_store_endpoint_type,
        service_type=g.swift_store_service_type,
        retry_get_count=g.swift_store_retry_get_count,
        insecure=g.swift_store_auth_insecure,
        cacert=g.swift_store_cacert,
    )
