"""The Swift store's configuration: Glance's ``swift_store_config_file`` references and
the store that ``[glance_store]`` describes (its options are in
services/common/swift_options.py). Apart from services/store/backends/swift.py so that
reading the configuration does not import python-swiftclient into every service."""

from __future__ import annotations

import configparser

from oslo_config import cfg

from services.common.swift_options import swift_opts  # noqa: F401 - where tests find them

MiB = 1 << 20


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


def swift_store_from_config(conf: cfg.ConfigOpts, group=None):
    """The SwiftStore ``group`` describes (default ``conf.glance_store``; with multiple
    stores, the section named by the store's id), ``swift_opts`` registered there."""
    from services.store.backends.swift import SwiftStore

    g = group if group is not None else conf.glance_store
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
