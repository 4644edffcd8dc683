"""The Swift store's options in ``[glance_store]``, with Glance's names and defaults.

Here, not beside the Swift store (services/store/backends/swift_config.py), because the
configuration every service loads (services/common/config.py) registers them, and
services/common imports nothing from a service."""

from __future__ import annotations

from oslo_config import cfg

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
