"""The message broker as an operator configures it for Glance: ``transport_url`` and
oslo.messaging's ``[oslo_messaging_rabbit]`` options, turned into what the gateway's RPC
client (py-amqp) and the nameko services (kombu) take.

- ``transport_url = rabbit://u:p@a:5672,u:p@b:5672/vhost?ssl=1``: every host is used, in
  order, with failover (kombu's ``;``-separated alternates; the gateway's client the
  same); a host without credentials borrows the first host's.
- TLS: ``?ssl=1`` in the URL or ``[oslo_messaging_rabbit] ssl = true``, with ``ssl_ca_file``,
  ``ssl_cert_file``, ``ssl_key_file``, ``ssl_version``, built as oslo.messaging's
  ``_fetch_ssl_params`` builds them (a CA file means the broker's certificate is verified).
- ``heartbeat_timeout_threshold`` (oslo's default 60; 0 turns heartbeats off).
- ``rabbit_quorum_queue``: the services' RPC queues are quorum queues (clusters).

oslo.messaging options that Tessera reads but does not act on are registered too, so that
setting one logs a warning instead of being silently ignored (``unhonoured_options``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from oslo_config import cfg

GROUP = "oslo_messaging_rabbit"

rabbit_opts = [
    cfg.BoolOpt(
        "ssl",
        default=False,
        deprecated_name="rabbit_use_ssl",
        help="Connect to RabbitMQ over TLS (as does ?ssl=1 in transport_url).",
    ),
    cfg.StrOpt("ssl_ca_file", default="", help="CA certificates that verify the broker."),
    cfg.StrOpt("ssl_cert_file", default="", help="Client certificate (PEM)."),
    cfg.StrOpt("ssl_key_file", default="", help="Client certificate's private key (PEM)."),
    cfg.StrOpt(
        "ssl_version",
        default="",
        help="Pin one TLS version: TLSv1, TLSv1_1, TLSv1_2 or TLSv1_3 (SSLv23/TLS: any).",
    ),
    cfg.IntOpt(
        "heartbeat_timeout_threshold",
        default=60,
        min=0,
        help="Seconds without a heartbeat after which a broker connection counts as "
        "dead (0: no heartbeats).",
    ),
    cfg.BoolOpt(
        "rabbit_quorum_queue",
        default=False,
        help="Declare the services' RPC queues as quorum queues (replicated over a "
        "RabbitMQ cluster). Switching an existing deployment needs its rpc-<service> "
        "queues deleted first: RabbitMQ refuses to redeclare a queue with another type.",
    ),
]

#: oslo.messaging options an operator's glance-api.conf may carry, which Tessera reads
#: only to say that it does not act on them.
UNHONOURED = {
    "amqp_durable_queues": "RPC requests are transient; the services' queues are durable",
    "amqp_auto_delete": "queue lifetimes are Tessera's own",
    "rabbit_ha_queues": "use rabbit_quorum_queue for replicated queues",
    "rabbit_transient_queues_ttl": "reply queues are exclusive to their connection",
    "rabbit_qos_prefetch_count": "the services' prefetch is [DEFAULT] rpc_max_workers",
    "rabbit_retry_interval": "kombu's and the gateway's own reconnect timing apply",
    "rabbit_retry_backoff": "kombu's and the gateway's own reconnect timing apply",
    "rabbit_interval_max": "kombu's and the gateway's own reconnect timing apply",
    "kombu_reconnect_delay": "kombu's and the gateway's own reconnect timing apply",
    "kombu_missing_consumer_retry_timeout": "[DEFAULT] rpc_timeout applies",
    "kombu_failover_strategy": "hosts are tried in the order transport_url lists them",
    "kombu_compression": "messages are not compressed",
    "rabbit_login_method": "AMQPLAIN/PLAIN as py-amqp negotiates",
    "heartbeat_rate": "heartbeats are checked at twice the threshold's rate",
    "heartbeat_in_pthread": "heartbeats run in the process's own loop",
    "ssl_enforce_fips_mode": "FIPS mode is the Python build's",
    "direct_mandatory_flag": "RPC requests always carry the mandatory flag",
    "enable_cancel_on_failover": "consumers re-subscribe after a failover",
    "rabbit_quorum_delivery_limit": "quorum queues keep RabbitMQ's defaults",
    "rabbit_quorum_max_memory_length": "quorum queues keep RabbitMQ's defaults",
    "rabbit_quorum_max_memory_bytes": "quorum queues keep RabbitMQ's defaults",
    "rabbit_transient_quorum_queue": "reply queues are exclusive classic queues",
    "use_queue_manager": "queue names are nameko's",
    "rabbit_stream_fanout": "events use nameko's queues",
}

rabbit_opts += [
    cfg.StrOpt(name, help=f"Read but not acted on by Tessera ({why}).")
    for name, why in UNHONOURED.items()
]

TLS_VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1_1": ssl.TLSVersion.TLSv1_1,
    "tlsv1_2": ssl.TLSVersion.TLSv1_2,
    "tlsv1_3": ssl.TLSVersion.TLSv1_3,
}
ANY_TLS_VERSION = {"", "sslv23", "tls", "tls_client"}
URL_QUERY_KEYS = {"ssl"}
TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class BrokerHost:
    """One host of the transport URL, as py-amqp's ``Connection`` takes it."""

    host: str  # host:port
    userid: str
    password: str
    virtual_host: str

    def connection_params(self) -> dict:
        return {
            "host": self.host,
            "userid": self.userid,
            "password": self.password,
            "virtual_host": self.virtual_host,
        }


def _host_port(netloc_host: str) -> str:
    host, port = netloc_host, "5672"
    if netloc_host.startswith("["):  # [ipv6]:port
        end = netloc_host.index("]")
        host, rest = netloc_host[: end + 1], netloc_host[end + 1 :]
        port = rest[1:] or port
    elif ":" in netloc_host:
        host, _, port = netloc_host.rpartition(":")
    return f"{host or '127.0.0.1'}:{port}"


def parse_transport_url(url: str) -> tuple[list[BrokerHost], dict[str, str]]:
    """The hosts of ``rabbit://[user:pass@]host[:port][,...]/[vhost][?query]`` (also
    ``amqp://``, ``kombu://`` and kombu's ``;``-joined form) and its query parameters."""
    if ";" in url:  # kombu's failover list: one full URL per host
        hosts: list[BrokerHost] = []
        query: dict[str, str] = {}
        for part in url.split(";"):
            more, more_query = parse_transport_url(part.strip())
            hosts += more
            query.update(more_query)
        return hosts, query
    parts = urlsplit(url)
    if parts.scheme not in ("rabbit", "amqp", "kombu", "pyamqp"):
        raise ValueError(f"transport_url must be rabbit://…, not {parts.scheme or url!r}://")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    hosts = []
    default_creds: tuple[str, str] | None = None
    for netloc in parts.netloc.split(","):
        creds, _, hostport = netloc.rpartition("@")
        if creds:
            user, _, password = creds.partition(":")
            creds_pair = (unquote(user), unquote(password))
            default_creds = default_creds or creds_pair
        else:
            creds_pair = None
        hosts.append((creds_pair, _host_port(hostport)))
    result = []
    for creds_pair, hostport in hosts:
        user, password = creds_pair or default_creds or ("guest", "guest")
        result.append(BrokerHost(hostport, user, password, vhost))
    return result, dict(parse_qsl(parts.query))


def kombu_uri(url: str) -> str:
    """The transport URL as kombu's failover list (``amqp://…;amqp://…``), without its
    query: TLS goes to kombu as the ``ssl`` argument, which the URL would override."""
    for prefix in ("rabbit://", "kombu://", "pyamqp://"):
        if url.startswith(prefix):
            url = "amqp://" + url[len(prefix) :]
    url = url.split("?", 1)[0]
    if ";" in url:
        return ";".join(kombu_uri(part) for part in url.split(";"))
    scheme, rest = url.split("://", 1)
    hosts, _, vhost = rest.partition("/")
    if "," not in hosts:
        return url
    parts = [h.rpartition("@") for h in hosts.split(",")]
    default_creds = next((creds for creds, _, _ in parts if creds), "")
    return ";".join(
        f"{scheme}://{(creds or default_creds) + '@' if (creds or default_creds) else ''}"
        f"{host}/{vhost}"
        for creds, _, host in parts
    )


def ssl_options(conf: cfg.ConfigOpts) -> bool | dict:
    """False, True or py-amqp's ``ssl`` dict, as oslo.messaging builds it."""
    rabbit = conf[GROUP]
    _, query = parse_transport_url(conf.transport_url)
    if not (rabbit.ssl or query.get("ssl", "").lower() in TRUE):
        return False
    params: dict = {}
    version = (rabbit.ssl_version or "").lower()
    if version in TLS_VERSIONS:
        params["tls_minimum_version"] = params["tls_maximum_version"] = TLS_VERSIONS[version]
    elif version not in ANY_TLS_VERSION:
        raise ValueError(
            f"[{GROUP}] ssl_version {rabbit.ssl_version!r} is not one of "
            f"{', '.join(['SSLv23', 'TLSv1', 'TLSv1_1', 'TLSv1_2', 'TLSv1_3'])}"
        )
    if rabbit.ssl_key_file:
        params["keyfile"] = rabbit.ssl_key_file
    if rabbit.ssl_cert_file:
        params["certfile"] = rabbit.ssl_cert_file
    if rabbit.ssl_ca_file:
        params["ca_certs"] = rabbit.ssl_ca_file
        params["cert_reqs"] = ssl.CERT_REQUIRED
    return params or True


def unhonoured_options(conf: cfg.ConfigOpts) -> list[str]:
    """One warning for each broker setting Tessera reads but does not act on."""
    warnings = [
        f"[{GROUP}] {name} is set but Tessera does not use it: {why}"
        for name, why in UNHONOURED.items()
        if conf[GROUP][name] is not None
    ]
    _, query = parse_transport_url(conf.transport_url)
    warnings += [
        f"transport_url parameter {key}= is not used by Tessera (only ssl= is)"
        for key in query
        if key not in URL_QUERY_KEYS
    ]
    return warnings


@dataclass(frozen=True)
class BrokerSettings:
    """Everything a broker client needs, read once from the configuration."""

    hosts: tuple[BrokerHost, ...]
    amqp_uri: str  # kombu's form, for nameko
    ssl: bool | dict
    heartbeat: int
    quorum_queues: bool

    @classmethod
    def from_config(cls, conf: cfg.ConfigOpts) -> BrokerSettings:
        hosts, _ = parse_transport_url(conf.transport_url)
        return cls(
            hosts=tuple(hosts),
            amqp_uri=kombu_uri(conf.transport_url),
            ssl=ssl_options(conf),
            heartbeat=conf[GROUP].heartbeat_timeout_threshold,
            quorum_queues=conf[GROUP].rabbit_quorum_queue,
        )
