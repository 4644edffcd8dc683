"""The gateway's RPC client: nameko's wire protocol on a pool of plain AMQP connections.

Why not nameko's ``ClusterRpcProxy``: it pulls eventlet into the gateway process, takes
its context data once per proxy rather than per call, and publishes every request as a
persistent message with publisher confirms. This client speaks the same protocol (the
``nameko-rpc`` topic exchange, ``<service>.<method>`` routing keys, JSON
``{"args", "kwargs"}`` bodies, ``nameko.*`` context headers, replies routed to a
per-connection reply queue) but sends each request transient and unconfirmed.

No request outlives its caller:

- each request carries an AMQP ``expiration`` equal to the call's timeout, so RabbitMQ
  drops it if no replica took it in time (a stopped or busy service), and its absolute
  deadline in the ``x-tessera-deadline`` header, so a replica that takes it too late (a
  paused or overloaded process) drops it without running it (services/common/rpc.py);
- a service with no consumer on its queue is a 503 at once: before publishing, the client
  asks the broker for the queue's consumer count (a passive ``queue.declare``, one round
  trip), at most once per ``consumer_check_interval`` per service while the service
  answers, and on every call while it does not; a queue that does not exist at all comes
  back through the ``mandatory`` flag. A service that dies between two checks costs its
  callers the timeout, and its requests expire unseen.

Every host of the transport URL is used: a new connection tries them in turn, starting
from the last one that worked. TLS and heartbeats come from the broker settings
(services/common/broker.py); idle pooled connections are kept alive (heartbeats) and
checked by one background thread per process.

One connection is used by one thread at a time; the pool hands them out per call.
"""

from __future__ import annotations

import json
import logging
import queue
import select
import threading
import time
import uuid
from urllib.parse import unquote, urlparse

import amqp

from services.common.broker import BrokerHost, BrokerSettings, parse_transport_url
from services.common.context import RequestContext
from services.common.errors import ServiceUnavailable, TesseraError, from_remote

log = logging.getLogger(__name__)

RPC_EXCHANGE = "nameko-rpc"
RPC_QUEUE_TEMPLATE = "rpc-{}"  # nameko's
DEADLINE_HEADER = "x-tessera-deadline"
CONNECTION_ERRORS = (OSError, amqp.exceptions.AMQPError, amqp.exceptions.RecoverableConnectionError)


class RemoteServiceError(Exception):
    """A service failed unexpectedly (not one of Tessera's typed errors)."""


class NotSent(Exception):
    """The request could not be published: the connection was dead (safe to retry)."""


def connection_params(amqp_uri: str) -> dict:
    """py-amqp ``Connection`` arguments for the first host of ``amqp_uri``."""
    return broker_hosts(amqp_uri)[0].connection_params()


def broker_hosts(amqp_uri: str) -> list[BrokerHost]:
    """Every host of a transport URL or kombu failover list, in order."""
    try:
        return parse_transport_url(amqp_uri)[0]
    except ValueError:  # not a URL we know: keep the old, lenient reading
        url = urlparse(amqp_uri.split(";")[0])
        return [
            BrokerHost(
                f"{url.hostname or '127.0.0.1'}:{url.port or 5672}",
                unquote(url.username or "guest"),
                unquote(url.password or "guest"),
                unquote(url.path[1:]) if len(url.path) > 1 else "/",
            )
        ]


class RpcConnection:
    """One AMQP connection with its own reply queue."""

    def __init__(
        self,
        host: BrokerHost,
        connect_timeout: float = 5.0,
        ssl: bool | dict = False,
        heartbeat: int = 0,
    ):
        self.host = host
        self.connection = amqp.Connection(
            connect_timeout=connect_timeout,
            ssl=ssl,
            heartbeat=heartbeat,
            **host.connection_params(),
        )
        self.connection.connect()
        self.heartbeat = self.connection.heartbeat  # as negotiated
        self.channel = self.connection.channel()
        self.reply_key = str(uuid.uuid4())
        self.channel.exchange_declare(RPC_EXCHANGE, "topic", durable=True, auto_delete=False)
        reply_queue = f"rpc.reply-tessera-api-{self.reply_key}"
        self.channel.queue_declare(reply_queue, exclusive=True, auto_delete=True)
        self.channel.queue_bind(reply_queue, RPC_EXCHANGE, routing_key=self.reply_key)
        self.channel.basic_consume(reply_queue, no_ack=True, callback=self._on_reply)
        self.channel.events["basic_return"].add(self._on_return)
        self._probe: amqp.Channel | None = None
        self._waiting_for: str | None = None
        self._reply: dict | None = None
        self._returned = False
        self.idle_since = time.monotonic()

    def _on_reply(self, message) -> None:
        if message.properties.get("correlation_id") == self._waiting_for:
            self._reply = json.loads(message.body)

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        if message.properties.get("correlation_id") == self._waiting_for:
            self._returned = True

    def consumer_count(self, service: str) -> int:
        """How many consumers the service's queue has (0 if it has no queue).

        A passive declare of a missing queue closes its channel, so this uses a channel
        of its own, never the one the reply queue is consumed on."""
        if self._probe is None:
            self._probe = self.connection.channel()
        try:
            _, _, consumers = self._probe.queue_declare(
                RPC_QUEUE_TEMPLATE.format(service), passive=True
            )
        except amqp.exceptions.NotFound:
            self._probe = None
            return 0
        return consumers

    def is_usable(self) -> bool:
        """Whether a pooled connection still works: reads what the broker sent while it
        was idle (heartbeats, or the close of a broker that went away)."""
        conn = self.connection
        if not conn.connected:  # checked first: py-amqp reconnects on .sock of a closed one
            return False
        try:
            readable, _, _ = select.select([conn.sock], [], [], 0)
            if readable:
                try:
                    conn.drain_events(timeout=0)
                except TimeoutError:
                    pass
            if conn.connected:
                conn.heartbeat_tick()
        except (*CONNECTION_ERRORS, ValueError):
            return False
        return bool(conn.connected)

    def call(
        self,
        service: str,
        method: str,
        ctx: RequestContext,
        args: tuple,
        kwargs: dict,
        timeout: float,
    ):
        correlation_id = str(uuid.uuid4())
        self._waiting_for, self._reply, self._returned = correlation_id, None, False
        headers = {f"nameko.{k}": v for k, v in ctx.to_headers().items()}
        headers["nameko.call_id_stack"] = [f"api.{method}.{correlation_id}"]
        headers[DEADLINE_HEADER] = time.time() + timeout
        message = amqp.Message(
            json.dumps({"args": list(args), "kwargs": kwargs}),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=1,
            expiration=str(max(1, int(timeout * 1000))),
            reply_to=self.reply_key,
            correlation_id=correlation_id,
            application_headers=headers,
        )
        try:
            self.channel.basic_publish(
                message, exchange=RPC_EXCHANGE, routing_key=f"{service}.{method}", mandatory=True
            )
        except CONNECTION_ERRORS as exc:
            raise NotSent(str(exc)) from exc
        deadline = time.monotonic() + timeout
        tick = self.heartbeat / 4 if self.heartbeat else None
        while self._reply is None and not self._returned:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                self.connection.drain_events(timeout=min(remaining, tick or remaining))
            except TimeoutError:
                pass
            if tick:
                self.connection.heartbeat_tick()
        if self._returned:
            raise ServiceUnavailable(f"The {service} service is not running.")
        return self._reply

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
            pass


class RpcClient:
    """A per-process pool of RpcConnections, created lazily (after the worker forks)."""

    def __init__(
        self,
        amqp_uri: str,
        timeout: float,
        max_idle: int = 32,
        *,
        ssl: bool | dict = False,
        heartbeat: int = 0,
        connect_timeout: float = 5.0,
        consumer_check_interval: float = 1.0,
    ):
        self.amqp_uri = amqp_uri
        self.hosts = broker_hosts(amqp_uri)
        self.timeout = timeout
        self.ssl = ssl
        self.heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self.consumer_check_interval = consumer_check_interval
        self._next_host = 0
        self._consumers_seen: dict[str, float] = {}  # service -> when it last had some
        self._idle: queue.LifoQueue[RpcConnection] = queue.LifoQueue(maxsize=max_idle)
        self._keeper: threading.Thread | None = None
        self._closed = threading.Event()
        #: ``observer(service, method, seconds, error or None)`` after each call (the
        #: gateway's metrics, services/api/metrics.py)
        self.observer = None

    @classmethod
    def from_config(cls, conf) -> RpcClient:
        """The gateway's client for a Tessera configuration (every broker host, TLS,
        heartbeats, ``rpc_timeout``)."""
        from services.common.broker import unhonoured_options

        for warning in unhonoured_options(conf):
            log.warning("%s", warning)
        settings = BrokerSettings.from_config(conf)
        return cls(
            settings.amqp_uri,
            timeout=conf.rpc_timeout,
            ssl=settings.ssl,
            heartbeat=settings.heartbeat,
        )

    # --- the pool ---

    def _connect(self) -> RpcConnection:
        """A new connection to the first host that answers, starting from the last one
        that did."""
        errors = []
        for _ in range(len(self.hosts)):
            index = self._next_host
            host = self.hosts[index]
            try:
                return RpcConnection(host, self.connect_timeout, self.ssl, self.heartbeat)
            except CONNECTION_ERRORS as exc:
                errors.append(f"{host.host}: {exc}")
                self._next_host = (index + 1) % len(self.hosts)
                if len(self.hosts) > 1:
                    log.warning("broker %s unreachable (%s); trying another", host.host, exc)
        log.error("cannot connect to the message broker: %s", "; ".join(errors))
        raise ServiceUnavailable(
            "The image service cannot reach its message broker; try again later."
        )

    def _checkout(self) -> RpcConnection:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return self._connect()
            if conn.is_usable():
                return conn
            conn.close()

    def _checkin(self, conn: RpcConnection) -> None:
        conn.idle_since = time.monotonic()
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()
        if self.heartbeat and self._keeper is None:
            self._start_keeper()

    def _start_keeper(self) -> None:
        """One daemon thread that keeps the idle connections' heartbeats going (and drops
        the dead ones), so the broker does not close them while no request needs them."""
        self._keeper = threading.Thread(
            target=self._keep_idle_alive, name="tessera-rpc-heartbeats", daemon=True
        )
        self._keeper.start()

    def _keep_idle_alive(self) -> None:
        period = max(1.0, self.heartbeat / 4)
        while not self._closed.wait(period):
            idle = []
            while True:
                try:
                    idle.append(self._idle.get_nowait())
                except queue.Empty:
                    break
            for conn in reversed(idle):  # back in the same (LIFO) order
                if conn.is_usable():
                    try:
                        self._idle.put_nowait(conn)
                        continue
                    except queue.Full:
                        pass
                conn.close()

    # --- calls ---

    def _has_consumers(self, conn: RpcConnection, service: str) -> bool:
        now = time.monotonic()
        if now - self._consumers_seen.get(service, -1e9) < self.consumer_check_interval:
            return True
        if conn.consumer_count(service) == 0:
            return False
        self._consumers_seen[service] = now
        return True

    def call(self, service: str, method: str, ctx: RequestContext, *args, **kwargs):
        """Call ``service.method(*args, **kwargs)``; typed errors are raised again."""
        observer = self.observer
        if observer is None:
            return self._call(service, method, ctx, args, kwargs)
        started = time.monotonic()
        try:
            result = self._call(service, method, ctx, args, kwargs)
        except Exception as exc:
            observer(service, method, time.monotonic() - started, exc)
            raise
        observer(service, method, time.monotonic() - started, None)
        return result

    def _call(self, service: str, method: str, ctx: RequestContext, args, kwargs):
        for attempt in (1, 2):
            conn = self._checkout()
            try:
                try:
                    running = self._has_consumers(conn, service)
                except CONNECTION_ERRORS as exc:
                    raise NotSent(str(exc)) from exc
                if not running:
                    log.error("%s.%s: no %s service is running", service, method, service)
                    raise ServiceUnavailable(f"The {service} service is not running.")
                reply = conn.call(service, method, ctx, args, kwargs, self.timeout)
            except TimeoutError:
                conn.close()
                self._consumers_seen.pop(service, None)  # check again before the next call
                log.error("%s.%s did not answer within %ss", service, method, self.timeout)
                raise ServiceUnavailable(
                    f"The {service} service did not answer in time; try again later."
                ) from None
            except ServiceUnavailable:  # no consumer, or the request came back unroutable
                self._checkin(conn)
                raise
            except NotSent as exc:
                conn.close()
                if attempt == 1:  # a pooled connection the broker dropped: retry once
                    log.warning("broker connection lost (%s); reconnecting", exc)
                    continue
                raise ServiceUnavailable(
                    "The image service lost its message broker; try again later."
                ) from None
            except CONNECTION_ERRORS:
                conn.close()
                raise ServiceUnavailable(
                    "The image service lost its message broker during the call; try again later."
                ) from None
            self._checkin(conn)
            break
        error = reply.get("error")
        if error:
            typed: TesseraError | None = from_remote(
                error.get("exc_type", ""), error.get("value", "")
            )
            if typed is not None:
                raise typed
            raise RemoteServiceError(
                f"{service}.{method} failed: {error.get('exc_type')}: {error.get('value')}"
            )
        return reply["result"]

    def close(self) -> None:
        self._closed.set()
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
