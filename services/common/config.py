"""Configuration: one INI file with Glance's section and option names.

Every service command takes ``--config-file PATH`` (oslo.config parses it). Every option
can also come from the environment as ``OS_<GROUP>__<OPTION>`` (oslo.config's environment
source), e.g. ``OS_DATABASE__CONNECTION`` or ``OS_DEFAULT__TRANSPORT_URL``.

The configuration is read once at start-up by ``load_config`` and passed in; nothing
reads a global.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from oslo_config import cfg
from oslo_middleware import cors, http_proxy_to_wsgi
from oslo_middleware.healthcheck import opts as healthcheck_opts

from services.common import broker
from services.common.swift_options import swift_opts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / "var"

DEFAULT_DISK_FORMATS = [
    "ami",
    "ari",
    "aki",
    "vhd",
    "vhdx",
    "vmdk",
    "raw",
    "qcow2",
    "vdi",
    "iso",
    "ploop",
]
DEFAULT_CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]

default_opts = [
    cfg.StrOpt(
        "transport_url",
        default="rabbit://guest:guest@127.0.0.1:5672/",
        help="RabbitMQ broker for RPC and events (rabbit://user:pass@host:port/vhost).",
    ),
    cfg.StrOpt(
        "data_dir",
        default=str(DEFAULT_DATA_DIR),
        help="Base directory for the embedded defaults (SQLite file, file store, cache).",
    ),
    cfg.HostAddressOpt("bind_host", default="127.0.0.1", help="Address the API listens on."),
    cfg.PortOpt("bind_port", default=9292, help="Port the API listens on."),
    cfg.IntOpt("workers", default=2, min=1, help="API worker processes."),
    cfg.IntOpt("threads", default=16, min=1, help="Threads per API worker process."),
    cfg.FloatOpt(
        "rpc_timeout",
        default=30.0,
        min=0.1,
        help="Seconds the API waits for a service to answer an RPC before it returns 503.",
    ),
    cfg.IntOpt(
        "rpc_max_workers",
        default=20,
        min=1,
        help="Concurrent RPC workers per service process (nameko max_workers).",
    ),
    cfg.IntOpt(
        "limit_param_default",
        default=25,
        min=1,
        help="Page size of image lists when the request gives no limit.",
    ),
    cfg.IntOpt("api_limit_max", default=1000, min=1, help="Largest page size a list returns."),
    cfg.IntOpt(
        "image_property_quota",
        default=128,
        help="Most additional properties an image may have (negative: unlimited).",
    ),
    cfg.IntOpt(
        "image_tag_quota", default=128, help="Most tags an image may have (negative: unlimited)."
    ),
    cfg.IntOpt(
        "image_member_quota",
        default=128,
        help="Most members an image may have (negative: unlimited).",
    ),
    cfg.IntOpt(
        "image_location_quota",
        default=10,
        help="Most locations an image may have (negative: unlimited).",
    ),
    cfg.IntOpt(
        "image_size_cap",
        default=1099511627776,
        min=1,
        help="Largest image size in bytes a user may upload (default 1 TiB).",
    ),
    cfg.StrOpt(
        "user_storage_quota",
        default="0",
        help="Total image bytes one project may store, e.g. 500GB (0: unlimited).",
    ),
    cfg.StrOpt(
        "property_protection_file",
        help="INI file of property protections (Glance's format: sections are regular "
        "expressions over extra property names, keys create/read/update/delete list who "
        "may). Unset: no protections. A file that cannot be used stops every service "
        "at start.",
    ),
    cfg.StrOpt(
        "property_protection_rule_format",
        default="roles",
        choices=("roles", "policies"),
        help="What the property protection file lists: roles, or policy rule names "
        "(defined in [oslo_policy] policy_file).",
    ),
    cfg.BoolOpt(
        "show_image_direct_url",
        default=False,
        help="Show the image's direct_url (the store location) in image bodies.",
    ),
    cfg.BoolOpt(
        "show_multiple_locations",
        default=False,
        help="Show the image's locations in image bodies and allow changing them.",
    ),
    cfg.StrOpt("hashing_algorithm", default="sha512", help="hashlib algorithm for os_hash_value."),
    cfg.StrOpt(
        "public_endpoint",
        help="Public URL of the API for the links of the version document (as Glance's "
        "public_endpoint); default: the URL the request came to.",
    ),
    cfg.BoolOpt("debug", default=False, help="Log at DEBUG level."),
    cfg.StrOpt("log_file", help="Log to this file instead of standard error."),
]

image_format_opts = [
    cfg.ListOpt(
        "disk_formats", default=DEFAULT_DISK_FORMATS, help="Disk formats images may declare."
    ),
    cfg.ListOpt(
        "container_formats",
        default=DEFAULT_CONTAINER_FORMATS,
        help="Container formats images may declare.",
    ),
    cfg.BoolOpt(
        "require_image_format_match",
        default=True,
        help="Refuse an upload (container_format bare) whose content is not of its "
        "disk_format, as Glance does.",
    ),
    cfg.ListOpt(
        "gpt_safety_checks_nonfatal",
        default=[],
        help="GPT/MBR safety checks (mbr) that only warn for content found to be GPT.",
    ),
]

database_opts = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of the metadata database; mysql:// means PyMySQL. "
        "Default: SQLite under data_dir.",
    ),
    cfg.IntOpt("max_pool_size", default=25, help="Database connection pool size."),
    cfg.IntOpt("max_overflow", default=10, help="Connections over the pool size."),
    cfg.IntOpt(
        "connection_recycle_time",
        default=3600,
        help="Seconds after which a pooled connection is replaced.",
    ),
]

paste_deploy_opts = [
    cfg.StrOpt(
        "flavor",
        default="",
        help="'keystone' for keystonemiddleware auth_token; empty for development "
        "auth (project, user and roles from X-Project-Id, X-User-Id, X-Roles).",
    ),
    cfg.StrOpt("config_file", help="Accepted for compatibility with Glance; unused."),
]

store_opts = [
    cfg.HostAddressOpt(
        "data_bind_host",
        default="127.0.0.1",
        help="Address the store replica's data port listens on.",
    ),
    cfg.PortOpt(
        "data_bind_port", default=0, help="The store replica's data port (0: any free port)."
    ),
    cfg.StrOpt(
        "data_advertise_host",
        help="Host name the API uses to reach this replica's data port (default: data_bind_host).",
    ),
    cfg.IntOpt(
        "upload_lease_seconds",
        default=30,
        min=2,
        help="An upload whose store replica has not renewed its lease for this "
        "long is given up: the image returns to queued, partial data is "
        "removed.",
    ),
]

glance_store_opts = [
    cfg.ListOpt("stores", default=["file", "http"], help="Store backends to enable."),
    cfg.StrOpt("default_store", default="file", help="Store that receives uploads."),
    cfg.StrOpt(
        "filesystem_store_datadir", help="Directory of the file store (default: data_dir/images)."
    ),
]

image_cache_opts = [
    cfg.StrOpt("image_cache_dir", help="Image cache directory (default: data_dir/cache)."),
    cfg.IntOpt("image_cache_max_size", default=10 * 1024**3, help="Bytes the cache is pruned to."),
    cfg.IntOpt(
        "image_cache_stall_time",
        default=86400,
        help="Seconds after which an incomplete cache entry is removed.",
    ),
]


notifier_opts = [
    cfg.StrOpt(
        "default_publisher_id",
        default="image.localhost",
        help="publisher_id of the notifications Tessera sends (as Glance: typically "
        "image.<hostname>).",
    ),
    cfg.ListOpt(
        "disabled_notifications",
        default=[],
        help="Notifications not to send: single events (image.update) or groups "
        "(image, image.member, task).",
    ),
]

# oslo.messaging's own names and defaults (oslo_messaging/notify/notifier.py)
oslo_messaging_notifications_opts = [
    cfg.MultiStrOpt(
        "driver",
        default=[],
        help="Notification drivers: messagingv2 (Glance's usual choice), messaging, log, "
        "noop. Unset: no notifications, as Glance.",
    ),
    cfg.StrOpt(
        "transport_url",
        secret=True,
        help="Broker for notifications (default: [DEFAULT] transport_url).",
    ),
    cfg.ListOpt("topics", default=["notifications"], help="Topics notifications are published on."),
    cfg.IntOpt(
        "retry",
        default=-1,
        help="Attempts to re-send a notification after a recoverable error (0: none, "
        "-1: indefinitely). Sending never holds up the request that caused it.",
    ),
]


def build_config() -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every Tessera option registered (nothing parsed yet)."""
    conf = cfg.ConfigOpts()
    conf.register_opts(default_opts)
    conf.register_opts(image_cache_opts)
    conf.register_opts(image_format_opts, group="image_format")
    conf.register_opts(database_opts, group="database")
    conf.register_opts(paste_deploy_opts, group="paste_deploy")
    conf.register_opts(glance_store_opts, group="glance_store")
    conf.register_opts(swift_opts, group="glance_store")
    conf.register_opts(store_opts, group="store")
    conf.register_opts(broker.rabbit_opts, group=broker.GROUP)
    conf.register_opts(notifier_opts)
    conf.register_opts(oslo_messaging_notifications_opts, group="oslo_messaging_notifications")
    # oslo.middleware's own options, as Glance registers them (services/api/middleware.py)
    set_cors_defaults()
    conf.register_opts(cors.CORS_OPTS, group="cors")
    conf.register_opts(http_proxy_to_wsgi.OPTS, group="oslo_middleware")
    conf.register_opts(healthcheck_opts.HEALTHCHECK_OPTS, group="healthcheck")
    return conf


def set_cors_defaults() -> None:
    """Glance's CORS defaults (glance/common/config.py set_cors_middleware_defaults)."""
    cors.set_defaults(
        allow_headers=[
            "Content-MD5",
            "X-Image-Meta-Checksum",
            "X-Storage-Token",
            "Accept-Encoding",
            "X-Auth-Token",
            "X-Identity-Status",
            "X-Roles",
            "X-Service-Catalog",
            "X-User-Id",
            "X-Tenant-Id",
            "X-OpenStack-Request-ID",
        ],
        expose_headers=[
            "X-Image-Meta-Checksum",
            "X-Auth-Token",
            "X-Subject-Token",
            "X-Service-Token",
            "X-OpenStack-Request-ID",
        ],
        allow_methods=["GET", "PUT", "POST", "DELETE", "PATCH"],
    )


def package_version() -> str:
    """Tessera's version (pyproject.toml), for ``--version`` on every command."""
    try:
        return metadata.version("tessera")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def load_config(argv: list[str] | None = None, prog: str = "tessera") -> cfg.ConfigOpts:
    """Parse ``--config-file`` (and the environment) into a new ConfigOpts."""
    conf = build_config()
    conf(
        args=argv if argv is not None else [],
        project="tessera",
        prog=prog,
        version=package_version(),
        default_config_files=[],
        default_config_dirs=[],
    )
    return conf


def data_dir(conf: cfg.ConfigOpts) -> Path:
    return Path(conf.data_dir)


def database_url(conf: cfg.ConfigOpts) -> str:
    """The SQLAlchemy URL; ``mysql://`` becomes ``mysql+pymysql://``."""
    url = conf.database.connection or f"sqlite:///{data_dir(conf) / 'tessera.sqlite'}"
    if url.startswith("mysql://"):
        url = "mysql+pymysql://" + url[len("mysql://") :]
    return url


def filesystem_store_datadir(conf: cfg.ConfigOpts) -> Path:
    return Path(conf.glance_store.filesystem_store_datadir or data_dir(conf) / "images")


def image_cache_dir(conf: cfg.ConfigOpts) -> Path:
    return Path(conf.image_cache_dir or data_dir(conf) / "cache")


def amqp_uri(conf: cfg.ConfigOpts) -> str:
    """oslo.messaging's ``rabbit://`` transport URL as the ``amqp://`` URI kombu takes
    (several hosts become kombu's ``;``-separated failover list; services/common/broker.py)."""
    return broker.kombu_uri(conf.transport_url)


def nameko_config(conf: cfg.ConfigOpts) -> dict:
    """The nameko container config for a service run with ``conf``."""
    settings = broker.BrokerSettings.from_config(conf)
    return {
        "AMQP_URI": settings.amqp_uri,
        "AMQP_SSL": settings.ssl or None,
        "HEARTBEAT": settings.heartbeat,
        "max_workers": conf.rpc_max_workers,
        "serializer": "json",
        "TESSERA_BROKER": settings,
        "TESSERA_CONF": conf,
    }
