"""Configuration: one INI file with Glance's section and option names.

Every service command takes ``--config-file PATH`` (oslo.config parses it). Every option
can also come from the environment as ``OS_<GROUP>__<OPTION>`` (oslo.config's environment
source), e.g. ``OS_DATABASE__CONNECTION`` or ``OS_DEFAULT__TRANSPORT_URL``.

The configuration is read once at start-up by ``load_config`` and passed in; nothing
reads a global.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_limit import opts as limit_opts
from oslo_middleware import cors, http_proxy_to_wsgi
from oslo_middleware.healthcheck import opts as healthcheck_opts
from oslo_policy import opts as policy_opts

from services.common import broker, logs
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
DEFAULT_IMAGE_CACHE_MAX_SIZE = 10 * 1024**3
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
        sample_default="<the project's directory>/var",
        help="Base directory for the embedded defaults (SQLite file, file store, cache).",
    ),
    cfg.StrOpt(
        "metadata_source_path",
        default="/etc/glance/metadefs/",
        help="Directory of the metadata definition JSON files (Glance's etc/metadefs format) "
        "that tessera-manage db load_metadefs reads and db export_metadefs writes.",
    ),
    cfg.HostAddressOpt("bind_host", default="127.0.0.1", help="Address the API listens on."),
    cfg.PortOpt("bind_port", default=9292, help="Port the API listens on."),
    cfg.BoolOpt(
        "allow_insecure_dev_auth",
        default=False,
        help="Let development auth (no [paste_deploy] flavor: a caller without identity "
        "headers is an admin) serve on a bind_host that is not a loopback address. "
        "Insecure: only where nobody else reaches the port (a container whose port is "
        "published on the host's loopback). Off: the API refuses to start there.",
    ),
    cfg.IntOpt("workers", default=2, min=1, help="API worker processes."),
    cfg.IntOpt(
        "threads",
        default=64,
        min=1,
        help="Threads per API worker process for metadata requests, and as many again "
        "for image data (uploads, downloads, large bodies): requests served at once, "
        "each once its line and headers have arrived (services/api/front.py). A stalled "
        "upload holds an image data thread for at most upload_idle_timeout seconds.",
    ),
    cfg.IntOpt(
        "worker_connections",
        default=1000,
        min=1,
        help="Most client connections one API worker process holds at once (kept alive, "
        "sending their request, or being served); further ones wait in the listen "
        "backlog.",
    ),
    cfg.FloatOpt(
        "client_header_timeout",
        default=10.0,
        min=0,
        help="Seconds a client has to send a request's line and headers (and a body of "
        "at most 64 KiB, such as a JSON document) once it connects or, on a kept-alive "
        "connection, once the request starts; a slower one gets 408 and is closed "
        "(0: no limit). No thread is held meanwhile.",
    ),
    cfg.IntOpt(
        "client_socket_timeout",
        default=900,
        min=0,
        help="Glance's option: seconds a kept-alive client connection may stay idle "
        "before it is closed, and a client may stay silent while a thread reads its "
        "request body or writes its answer (0: no limit).",
    ),
    cfg.FloatOpt(
        "upload_idle_timeout",
        default=30.0,
        min=1,
        help="Seconds an image upload (PUT /v2/images/{id}/file, stage, v1 create or "
        "update with data) may go without a byte from its client before the gateway "
        "aborts it (408): the image goes back to queued and the partial data is removed.",
    ),
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
    cfg.BoolOpt(
        "use_keystone_limits",
        default=False,
        help="Enforce the image_size_total, image_stage_total, image_count_total and "
        "image_count_uploading limits registered in Keystone (unified limits, read through "
        "oslo.limit with the [oslo_limit] options) instead of user_storage_quota.",
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
        "delayed_delete",
        default=False,
        help="Delete image data later: a deleted image with data becomes pending_delete "
        "(hidden, its data kept) until the scrubber of the store replicas deletes its "
        "data, scrub_time seconds after the delete, and marks it deleted.",
    ),
    cfg.IntOpt(
        "scrub_time",
        default=0,
        min=0,
        help="Seconds an image stays pending_delete before the scrubber deletes its data.",
    ),
    cfg.IntOpt(
        "scrub_pool_size",
        default=1,
        min=1,
        help="Images the scrubber of one store replica scrubs in parallel.",
    ),
    cfg.IntOpt(
        "wakeup_time",
        default=300,
        min=0,
        help="Seconds between two runs of the scrubber on each store replica (at least 1).",
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
    cfg.BoolOpt(
        "enable_v1_api",
        default=True,
        help="Serve the legacy Image API v1 (/v1/images with x-image-meta-* headers) "
        "beside v2, and list v1.1 and v1.0 as DEPRECATED in the version document.",
    ),
    cfg.StrOpt(
        "public_endpoint",
        help="Public URL of the API for the links of the version document (as Glance's "
        "public_endpoint); default: the URL the request came to.",
    ),
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
        # oslo.db's old names, as Glance accepted them (seed 003: [DEFAULT] sql_connection)
        deprecated_opts=[
            cfg.DeprecatedOpt("sql_connection", group="DEFAULT"),
            cfg.DeprecatedOpt("sql_connection", group="DATABASE"),
            cfg.DeprecatedOpt("connection", group="sql"),
        ],
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
    cfg.IntOpt(
        "pool_timeout",
        default=10,
        min=1,
        help="Seconds a request waits for a free pooled connection before it is a 503.",
    ),
    cfg.StrOpt(
        "connection_parameters",
        default="",
        help="Parameters added to the MySQL connection, as oslo.db: "
        "param1=value1&param2=value2 (connect_timeout, read_timeout and write_timeout "
        "here override socket_timeout).",
    ),
    cfg.IntOpt(
        "socket_timeout",
        default=3,
        min=0,
        help="Seconds PyMySQL waits to connect to, read from or write to MySQL/MariaDB "
        "(its connect_timeout, read_timeout and write_timeout; Tessera's own option): "
        "a frozen database is a 503 after at most about twice this long (a ping, then a "
        "reconnect), not a hang; a query may not run longer. 0: no read or write timeout.",
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
    cfg.BoolOpt(
        "local_handoff",
        default=True,
        help="Hand a download from a file store to a gateway on the same host as an "
        "open file (over an abstract Unix socket), which sends it to the client itself: "
        "one copy less and no second connection. A gateway that cannot reach the socket "
        "(another host or network namespace) relays over the data port. False: every "
        "download crosses the data port.",
    ),
    cfg.IntOpt(
        "upload_lease_seconds",
        default=5,
        min=2,
        help="An upload whose store replica has not renewed its lease for this "
        "long is given up: the image returns to queued, partial data is "
        "removed. The replica renews every second, so a replica that dies mid-upload "
        "releases its image about this long after.",
    ),
    cfg.IntOpt(
        "scrub_lease_seconds",
        default=60,
        min=2,
        help="The scrubber's claim on an image it scrubs; a store replica renews it "
        "while it deletes the data. A claim not renewed for this long (its replica "
        "died) is taken over by the next scrubber run.",
    ),
    cfg.IntOpt(
        "upload_buffer_memory",
        default=64,
        min=1,
        help="MiB of upload buffers a store replica may hold at once (each upload uses "
        "1 to 4 buffers of 1 MiB; past the budget an upload waits for a buffer). They "
        "are given back to the system once no upload is running.",
    ),
    cfg.IntOpt(
        "sweep_interval",
        default=600,
        min=0,
        help="Seconds between two runs of the store sweep, which removes file store "
        "data no image owns (an upload whose completion was never recorded, a partial "
        "write of a dead replica, data of a deleted or unknown image); one store replica "
        "of the cluster runs each sweep. 0: no sweep.",
    ),
    cfg.IntOpt(
        "sweep_grace_seconds",
        default=900,
        min=1,
        help="The store sweep leaves alone any file modified less than this long ago.",
    ),
    cfg.IntOpt(
        "sweep_lease_seconds",
        default=60,
        min=2,
        help="The store sweep's claim; the replica sweeping renews it. A claim not "
        "renewed for this long (its replica died) lets another replica sweep.",
    ),
]

#: The stores Tessera has, by their glance_store names.
SUPPORTED_STORES = ("file", "http", "swift")
#: glance_store's other names of stores (its entry points): the class paths of the
#: Juno-era guides (``stores = glance.store.filesystem.Store``) and ``https``.
STORE_ALIASES = {
    "https": "http",
    "filesystem": "file",
    "glance.store.filesystem.Store": "file",
    "glance.store.http.Store": "http",
    "glance.store.swift.Store": "swift",
    "glance.store.rbd.Store": "rbd",
    "glance.store.s3.Store": "s3",
    "glance.store.cinder.Store": "cinder",
    "glance.store.sheepdog.Store": "sheepdog",
    "glance.store.vmware_datastore.Store": "vmware",
}

glance_store_opts = [
    cfg.ListOpt(
        "stores",
        default=["file", "http"],
        deprecated_opts=[cfg.DeprecatedOpt("known_stores", group="DEFAULT")],
        help="Store backends to enable: file, http, swift (glance_store's class paths "
        "such as glance.store.filesystem.Store are accepted too).",
    ),
    cfg.StrOpt(
        "default_store",
        default="file",
        deprecated_opts=[cfg.DeprecatedOpt("default_store", group="DEFAULT")],
        help="Store that receives uploads.",
    ),
    cfg.StrOpt(
        "filesystem_store_datadir", help="Directory of the file store (default: data_dir/images)."
    ),
    cfg.StrOpt(
        "default_backend",
        help="With [DEFAULT] enabled_backends: the id of the store that receives uploads "
        "and imports that name none.",
    ),
]

#: Multiple stores, as Glance: ``enabled_backends = fast:file, cheap:swift``.
multi_store_opts = [
    cfg.DictOpt(
        "enabled_backends",
        help="Multiple stores: store id:type pairs (types file, http, swift), each store's "
        "options in a section named by its id; [glance_store] default_backend names the "
        "default. Unset: the single store of [glance_store] stores/default_store.",
    ),
]

#: Options of every store section named by an id of enabled_backends (as glance_store).
backend_common_opts = [
    cfg.StrOpt("store_description", help="What this store is, shown by /v2/info/stores."),
    cfg.IntOpt("weight", default=0, help="The store's weight (shown by /v2/info/stores/detail)."),
]
backend_file_opts = [
    cfg.StrOpt(
        "filesystem_store_datadir",
        help="Directory of this file store (default: data_dir/images/<store id>).",
    ),
]

image_cache_opts = [
    cfg.StrOpt(
        "image_cache_dir",
        help="Image cache directory of this API node; setting it turns the image cache on "
        "(as Glance). Default: [cache] directory, else data_dir/cache.",
    ),
    cfg.IntOpt(
        "image_cache_max_size",
        default=DEFAULT_IMAGE_CACHE_MAX_SIZE,
        min=0,
        help="Bytes the pruner keeps the image cache under (least recently used images go first).",
    ),
    cfg.IntOpt(
        "image_cache_stall_time",
        default=86400,
        min=0,
        help="Seconds after which the cleaner removes an incomplete or invalid cache file.",
    ),
    cfg.StrOpt(
        "image_cache_driver",
        default="sqlite",
        choices=("sqlite", "centralized_db", "xattr"),
        ignore_case=True,
        help="Accepted for compatibility with Glance: Tessera keeps each node's cache index "
        "in a SQLite file in its cache directory (Glance's sqlite driver); other values "
        "log a warning.",
    ),
]

# The [cache] spellings of some install guides, accepted beside Glance's own options.
cache_opts = [
    # oslo.cache's own [cache] enabled, option for option: keystonemiddleware registers
    # oslo.cache's options on this ConfigOpts in Keystone mode, and an option of the same
    # name that differs (even in help) is a DuplicateOptError that stops the gateway.
    cfg.BoolOpt("enabled", default=False, help="Global toggle for caching."),
    cfg.StrOpt("directory", help="Image cache directory (as [DEFAULT] image_cache_dir)."),
    cfg.StrOpt(
        "image_cache_size",
        help="Bytes the cache is pruned to (as [DEFAULT] image_cache_max_size, which wins "
        "when set); an inline '# comment' after the number is ignored.",
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


#: The interoperable import methods Glance knows; Tessera runs those in
#: IMPLEMENTED_IMPORT_METHODS (services/api/imports.py warns about the others).
import_opts = [
    cfg.ListOpt(
        "enabled_import_methods",
        default=["glance-direct", "web-download", "copy-image"],
        help="Import methods offered at /v2/info/import and accepted by /import (Glance's "
        "list; Tessera runs glance-direct and web-download and ignores the others with a "
        "warning).",
    ),
]

#: Glance's [image_import_opts], [inject_metadata_properties], [image_conversion] and
#: [DEFAULT] do_secure_hash (services/registry/import_plugins.py,
#: services/store/conversion.py, the 2.17 location API).
image_import_plugin_opts = [
    cfg.ListOpt(
        "image_import_plugins",
        default=[],
        help="Import plugins run on every import: inject_image_metadata, image_conversion "
        "(others are ignored with a warning).",
    ),
]
inject_metadata_opts = [
    cfg.ListOpt(
        "ignore_user_roles",
        default=["admin"],
        help="Users with any of these roles get no injected properties.",
    ),
    cfg.DictOpt(
        "inject", default={}, help="Properties (key:value,...) injected into imported images."
    ),
]
image_conversion_opts = [
    cfg.StrOpt(
        "output_format",
        default="raw",
        choices=["raw", "qcow2", "vmdk"],
        help="disk_format image_conversion converts imported images to (with qemu-img).",
    ),
]
secure_hash_opts = [
    cfg.BoolOpt(
        "do_secure_hash",
        default=True,
        help="A location added through POST /v2/images/{id}/locations is read once in the "
        "background to compute its size and hashes (and check validation_data); off: the "
        "image is active at once with the validation_data given.",
    ),
]

staging_store_opts = [
    cfg.StrOpt(
        "filesystem_store_datadir",
        help="Directory of the staging area of glance-direct imports (default: "
        "data_dir/staging); every store replica must be able to read it.",
    ),
]

# Glance's [import_filtering_opts], with Glance's defaults
import_filtering_opts = [
    cfg.ListOpt(
        "allowed_schemes",
        default=["http", "https"],
        help="URL schemes web-download may fetch (wins over disallowed_schemes).",
    ),
    cfg.ListOpt("disallowed_schemes", default=[], help="URL schemes web-download refuses."),
    cfg.ListOpt(
        "allowed_hosts",
        default=[],
        help="Hosts web-download may fetch from (wins over disallowed_hosts); a host listed "
        "here may also be on a loopback, link-local or private address.",
    ),
    cfg.ListOpt("disallowed_hosts", default=[], help="Hosts web-download refuses."),
    cfg.ListOpt(
        "allowed_ports",
        item_type=cfg.types.Integer(min=1, max=65535),
        default=[80, 443],
        help="Ports web-download may connect to (wins over disallowed_ports).",
    ),
    cfg.ListOpt(
        "disallowed_ports",
        item_type=cfg.types.Integer(min=1, max=65535),
        default=[],
        help="Ports web-download refuses.",
    ),
]

task_opts = [
    cfg.IntOpt(
        "task_time_to_live",
        default=48,
        min=0,
        help="Hours a finished task stays visible (its expires_at).",
    ),
]


# The gateway's Prometheus metrics (services/api/metrics.py); beyond Glance.
metrics_opts = [
    cfg.BoolOpt(
        "enabled",
        default=True,
        help="Serve Prometheus metrics at /metrics on the API port (without a token, as "
        "/healthcheck) and record them.",
    ),
    cfg.ListOpt(
        "allowed_source_ranges",
        default=[],
        help="Addresses (CIDR) that may read /metrics, e.g. 10.0.0.0/8,127.0.0.1/32; "
        "empty: anyone who reaches the API port.",
    ),
]


def build_config() -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every Tessera option registered (nothing parsed yet)."""
    conf = cfg.ConfigOpts()
    conf.register_opts(default_opts)
    conf.register_opts(image_cache_opts)
    conf.register_opts(cache_opts, group="cache")
    conf.register_opts(image_format_opts, group="image_format")
    conf.register_opts(database_opts, group="database")
    conf.register_opts(paste_deploy_opts, group="paste_deploy")
    conf.register_opts(glance_store_opts, group="glance_store")
    conf.register_opts(swift_opts, group="glance_store")
    conf.register_opts(multi_store_opts)
    conf.register_opts(store_opts, group="store")
    conf.register_opts(import_opts)
    conf.register_opts(staging_store_opts, group="os_glance_staging_store")
    conf.register_opts(image_import_plugin_opts, group="image_import_opts")
    conf.register_opts(inject_metadata_opts, group="inject_metadata_properties")
    conf.register_opts(image_conversion_opts, group="image_conversion")
    conf.register_opts(secure_hash_opts)
    conf.register_opts(import_filtering_opts, group="import_filtering_opts")
    conf.register_opts(task_opts, group="task")
    conf.register_opts(broker.rabbit_opts, group=broker.GROUP)
    conf.register_opts(notifier_opts)
    conf.register_opts(oslo_messaging_notifications_opts, group="oslo_messaging_notifications")
    # oslo.middleware's own options, as Glance registers them (services/api/middleware.py)
    set_cors_defaults()
    conf.register_opts(cors.CORS_OPTS, group="cors")
    conf.register_opts(http_proxy_to_wsgi.OPTS, group="oslo_middleware")
    conf.register_opts(healthcheck_opts.HEALTHCHECK_OPTS, group="healthcheck")
    logs.register_options(conf)  # oslo.log's: debug, log_file, log_dir, use_json, ...
    conf.register_opts(metrics_opts, group="metrics")
    for group, opts in policy_opts.list_opts():  # [oslo_policy], read by oslo.policy's Enforcer
        conf.register_opts(opts, group=group)
    register_limit_opts(conf)
    return conf


def register_limit_opts(conf: cfg.ConfigOpts) -> None:
    """``[oslo_limit]`` (unified limits): oslo.limit's endpoint options, and keystoneauth's
    session, adapter and auth options, which oslo.limit's own ``register_opts`` puts on the
    process-global ``cfg.CONF`` only. The auth plugin's options join when it is loaded."""
    limit_opts.register_opts(conf)
    ks_loading.register_session_conf_options(conf, "oslo_limit")
    ks_loading.register_adapter_conf_options(conf, "oslo_limit", include_deprecated=False)
    ks_loading.register_auth_conf_options(conf, "oslo_limit")


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
    register_backend_opts(conf)
    return conf


def store_names(conf: cfg.ConfigOpts) -> list[str]:
    """``[glance_store] stores`` as store names (class paths mapped, duplicates dropped)."""
    names: list[str] = []
    for entry in conf.glance_store.stores:
        name = STORE_ALIASES.get(entry.strip(), entry.strip())
        if name and name not in names:
            names.append(name)
    return names


def enabled_backends(conf: cfg.ConfigOpts) -> dict[str, str]:
    """``[DEFAULT] enabled_backends`` as {store id: type} (empty: a single store)."""
    return {k.strip(): v.strip() for k, v in (conf.enabled_backends or {}).items()}


def register_backend_opts(conf: cfg.ConfigOpts) -> None:
    """Each store of enabled_backends gets its options in a group named by its id, as
    glance_store registers them (read after the files are parsed, as oslo.config allows)."""
    for store_id, kind in enabled_backends(conf).items():
        if store_id in conf:
            continue
        conf.register_opts(backend_common_opts, group=store_id)
        if kind == "file":
            conf.register_opts(backend_file_opts, group=store_id)
        elif kind == "swift":
            conf.register_opts(swift_opts, group=store_id)


def default_backend(conf: cfg.ConfigOpts) -> str:
    """The store receiving uploads: ``default_backend`` with multiple stores, else
    ``default_store``."""
    if enabled_backends(conf):
        return conf.glance_store.default_backend or ""
    return conf.glance_store.default_store


def store_datadir(conf: cfg.ConfigOpts, store_id: str) -> Path:
    """The directory of file store ``store_id`` of enabled_backends."""
    datadir = conf[store_id].filesystem_store_datadir
    return Path(datadir or data_dir(conf) / "images" / store_id)


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


def staging_datadir(conf: cfg.ConfigOpts) -> Path:
    """The staging area of glance-direct imports (``[os_glance_staging_store]``)."""
    return Path(conf.os_glance_staging_store.filesystem_store_datadir or data_dir(conf) / "staging")


def image_cache_dir(conf: cfg.ConfigOpts) -> Path:
    return Path(conf.image_cache_dir or conf.cache.directory or data_dir(conf) / "cache")


CACHE_FLAVORS = ("cache", "cachemanagement", "caching")


def paste_flavor(conf: cfg.ConfigOpts) -> tuple[str, bool]:
    """Glance's ``[paste_deploy] flavor`` as (auth, cache): ``keystone+cachemanagement``
    is Keystone auth with the image cache on, ``cache`` development auth with it."""
    parts = [p.strip() for p in (conf.paste_deploy.flavor or "").lower().split("+")]
    return ("keystone" if "keystone" in parts else ""), any(p in CACHE_FLAVORS for p in parts)


@dataclass(frozen=True)
class ImageCacheSettings:
    enabled: bool
    directory: Path
    max_size: int
    stall_time: int
    warnings: tuple[str, ...] = ()


def image_cache_settings(conf: cfg.ConfigOpts) -> ImageCacheSettings:
    """The image cache of this API node. On when ``image_cache_dir`` is set (as Glance),
    ``[cache] enabled`` or ``directory`` is, or the paste flavor names the cache."""
    warnings = []
    max_size = conf.image_cache_max_size
    legacy_size = (conf.cache.image_cache_size or "").split("#", 1)[0].strip()
    if legacy_size and max_size == DEFAULT_IMAGE_CACHE_MAX_SIZE:
        try:
            max_size = int(legacy_size)
        except ValueError:
            warnings.append(
                f"[cache] image_cache_size = {conf.cache.image_cache_size!r} is not a number "
                f"of bytes; ignored (image_cache_max_size = {max_size})"
            )
    if conf.image_cache_driver.lower() != "sqlite":
        warnings.append(
            f"image_cache_driver = {conf.image_cache_driver} is not honoured: each node "
            f"keeps its cache index in a SQLite file in its cache directory (as 'sqlite')"
        )
    enabled = bool(
        conf.image_cache_dir or conf.cache.enabled or conf.cache.directory or paste_flavor(conf)[1]
    )
    return ImageCacheSettings(
        enabled=enabled,
        directory=image_cache_dir(conf),
        max_size=max_size,
        stall_time=conf.image_cache_stall_time,
        warnings=tuple(warnings),
    )


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
