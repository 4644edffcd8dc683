"""Service side of RPC: nameko's ``@rpc`` with lean replies and deadlines, the request
context as a dependency, and the start-up of a nameko service from a Tessera config file.

Replies. nameko publishes every reply as a persistent message with publisher confirms,
through a new ``Responder`` and ``Publisher`` per call (a kombu ``Connection`` built from
the URI, a producer taken from kombu's pool, an ``Exchange``, the result serialised
twice). A reply is worthless once its caller has gone, and the caller times out on a lost
one, so Tessera's replies are transient and unconfirmed, serialised once and written with
a plain ``basic.publish`` on one channel per service process (``ReplyChannel``) that is
opened once and kept alive with heartbeats (README: "RPC cost").

Deadlines. The gateway (services/api/rpc_client.py) stamps each request with the absolute
time its caller gives up (``x-tessera-deadline``, seconds since the epoch; hosts keep
their clocks in step as OpenStack requires anyway). A request found past its deadline when
it arrives, or when a worker would start it after waiting for a free slot in nameko's
worker pool, is acknowledged and dropped without running and without a reply: its caller
has already answered 503, a reply would reach nobody and costs a publish exactly when the
service is behind. Each drop is logged with the request id.

This module reaches into nameko 2.14's entrypoint (``Rpc.handle_message``,
``RpcConsumer.handle_result``) and relies on eventlet's ``GreenPool.spawn`` returning
before the worker runs; tests/unit/common/test_rpc_lean.py fails if either changes.
"""

from __future__ import annotations

import inspect
import logging
import select
import sys
import time
from functools import partial

import amqp
import eventlet
import kombu.exceptions
import kombu.serialization
from eventlet.semaphore import Semaphore
from kombu import Connection, Queue
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    HEARTBEAT_CONFIG_KEY,
    LOGIN_METHOD_CONFIG_KEY,
)
from nameko.exceptions import (
    ContainerBeingKilled,
    IncorrectSignature,
    MalformedRequest,
    UnserializableValueError,
    serialize,
)
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc, RpcConsumer, get_rpc_exchange

from services.common.context import RequestContext
from services.common.errors import TesseraError
from services.common.logs import set_request_id
from services.common.policy import Policy

log = logging.getLogger(__name__)

DEADLINE_HEADER = "x-tessera-deadline"
BROKER_CONFIG_KEY = "TESSERA_BROKER"


class _Expired:
    """What a worker whose request expired before it started returns instead of running
    the method."""

    def __repr__(self) -> str:
        return "<expired request>"


EXPIRED = _Expired()


def _skip(*_args, **_kwargs):
    return EXPIRED


def expired_for(message, now: float | None = None) -> float | None:
    """Seconds since the request's deadline passed, or None while it has not (or if the
    request has no deadline, as nameko's own clients send)."""
    deadline = (message.headers or {}).get(DEADLINE_HEADER)
    if not isinstance(deadline, int | float):
        return None
    late = (time.time() if now is None else now) - deadline
    return late if late > 0 else None


class ReplyChannel:
    """One broker connection and channel for a service process's replies, opened on first
    use, written to by one green thread at a time, reconnected (to any host of the
    transport URL) when it breaks."""

    def __init__(self, amqp_uri: str, ssl=None, heartbeat: int = 0, login_method=None):
        self.amqp_uri = amqp_uri
        self.ssl = ssl
        self.heartbeat = heartbeat
        self.login_method = login_method
        self.lock = Semaphore()
        self.connection: Connection | None = None
        self.channel = None

    def _connect(self):
        self.connection = Connection(
            self.amqp_uri, ssl=self.ssl, heartbeat=self.heartbeat, login_method=self.login_method
        )
        self.connection.ensure_connection(max_retries=3, interval_start=0.2, interval_step=0.5)
        self.channel = self.connection.default_channel

    def _drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
                pass
        self.connection = self.channel = None

    def publish(self, body, content_type, content_encoding, exchange, routing_key, correlation_id):
        message = amqp.Message(
            body,
            content_type=content_type,
            content_encoding=content_encoding,
            delivery_mode=1,
            correlation_id=correlation_id,
        )
        with self.lock:
            for attempt in (1, 2):
                try:
                    if self.channel is None:
                        self._connect()
                    self.channel.basic_publish(message, exchange=exchange, routing_key=routing_key)
                    return
                # kombu's OperationalError: the broker could not be reached at all (a
                # restart); the reply is lost, never the service (it used to crash)
                except (*self._errors(), OSError, kombu.exceptions.OperationalError) as exc:
                    self._drop()
                    if attempt == 2:
                        log.error("could not send an RPC reply (%s); its caller will time out", exc)

    def _errors(self):
        if self.connection is not None:
            return self.connection.recoverable_connection_errors + (
                self.connection.connection_errors
            )
        return (amqp.exceptions.AMQPError,)

    def keep_alive(self) -> None:
        """Read what the broker sent (heartbeats) and send ours; drop a dead connection.
        Run by a green thread every heartbeat / 4 seconds."""
        with self.lock:
            if self.connection is None or not self.connection.connected:
                return
            try:
                sock = self.connection.connection.sock
                if select.select([sock], [], [], 0)[0]:
                    try:
                        self.connection.drain_events(timeout=0.01)
                    except TimeoutError:
                        pass
                self.connection.heartbeat_check()
            except (*self._errors(), OSError) as exc:
                log.warning("reply connection to the broker lost (%s); reopening on next use", exc)
                self._drop()

    def close(self) -> None:
        with self.lock:
            self._drop()


class LeanRpcConsumer(RpcConsumer):
    """nameko's RpcConsumer with quorum queues as an option and lean replies."""

    replies: ReplyChannel | None = None
    _keepalive = None  # the greenthread of _keep_replies_alive, stopped with the consumer

    def setup(self):
        super().setup()
        settings = self.container.config.get(BROKER_CONFIG_KEY)
        if settings is not None and settings.quorum_queues:
            queue = self.queue
            self.queue = Queue(
                queue.name,
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                durable=True,
                queue_arguments={"x-queue-type": "quorum"},
            )
        config = self.container.config
        self.exchange_name = get_rpc_exchange(config).name
        self.replies = ReplyChannel(
            config[AMQP_URI_CONFIG_KEY],
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            heartbeat=config.get(HEARTBEAT_CONFIG_KEY) or 0,
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )

    def start(self):
        super().start()
        if self.replies.heartbeat:
            self._keepalive = self.container.spawn_managed_thread(self._keep_replies_alive)

    def _keep_replies_alive(self) -> None:
        period = max(1.0, self.replies.heartbeat / 4)
        while True:
            eventlet.sleep(period)
            self.replies.keep_alive()

    def stop(self):
        super().stop()
        if self._keepalive is not None:  # else nameko kills it, with a warning per stop
            self._keepalive.kill()
        self.replies.close()

    def kill(self):
        super().kill()
        self.replies.close()

    def drop_expired(self, message, late: float) -> None:
        headers = message.headers or {}
        log.warning(
            "[%s] dropped %s without running it: its caller gave up %.1f s ago",
            headers.get("nameko.request_id", "-"),
            message.delivery_info.get("routing_key"),
            late,
        )
        self.queue_consumer.ack_message(message)

    def handle_result(self, message, result, exc_info):
        if result is EXPIRED:
            self.drop_expired(message, expired_for(message) or 0.0)
            return None, None
        error = serialize(exc_info[1]) if exc_info is not None else None
        # the reply is encoded as the request was (nameko's rule)
        serializer = kombu.serialization.registry.type_to_name[message.properties["content_type"]]
        try:
            content_type, encoding, body = kombu.serialization.dumps(
                {"result": result, "error": error}, serializer
            )
        except Exception:  # noqa: BLE001 - nameko's rule: an unserialisable result is an error
            exc_info = sys.exc_info()
            error = serialize(UnserializableValueError(result))
            result = None
            content_type, encoding, body = kombu.serialization.dumps(
                {"result": None, "error": error}, serializer
            )
        self.replies.publish(
            body,
            content_type,
            encoding,
            self.exchange_name,
            message.properties["reply_to"],
            message.properties.get("correlation_id"),
        )
        self.queue_consumer.ack_message(message)
        return result, exc_info


class LeanRpc(Rpc):
    """nameko's ``@rpc`` entrypoint that drops requests past their deadline: when they
    arrive, and again when a worker is about to start them."""

    rpc_consumer = LeanRpcConsumer()
    _signature: inspect.Signature | None = None

    def check_signature(self, args, kwargs):
        """nameko's check (a call the method cannot take is an IncorrectSignature reply),
        with the method's signature read once, not on every call (``getcallargs`` rebuilt
        it each time: ~4% of a registry call)."""
        if self._signature is None:
            method = getattr(self.container.service_cls, self.method_name)
            self._signature = inspect.signature(method)
        try:
            self._signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None

    def handle_message(self, body, message):
        late = expired_for(message)
        if late is not None:
            self.rpc_consumer.drop_expired(message, late)
            return
        try:
            args = body["args"]
            kwargs = body["kwargs"]
        except KeyError:
            raise MalformedRequest("Message missing `args` or `kwargs`") from None
        self.check_signature(args, kwargs)
        context_data = self.unpack_message_headers(message)
        handle_result = partial(self.handle_result, message)
        try:
            # Blocks while nameko's worker pool is full; returns before the worker runs.
            worker_ctx = self.container.spawn_worker(
                self, args, kwargs, context_data=context_data, handle_result=handle_result
            )
        except ContainerBeingKilled:
            self.rpc_consumer.requeue_message(message)
            return
        if expired_for(message) is not None:
            # waited too long for a free worker: the worker replaces the method by _skip
            setattr(worker_ctx.service, self.method_name, _skip)


def rpc(fn=None, **kwargs):
    """``@rpc`` for Tessera services: lean replies, deadlines; TesseraErrors are expected
    results (logged briefly, not as crashes)."""
    kwargs.setdefault("expected_exceptions", (TesseraError,))
    decorate = LeanRpc.decorator(**kwargs)
    return decorate(fn) if fn else decorate


class Context(DependencyProvider):
    """Injects the caller's RequestContext, with the deployment's policy, and tags the
    worker's log lines with its request id."""

    def setup(self):
        self.policy = Policy(self.container.config["TESSERA_CONF"])

    def worker_setup(self, worker_ctx):
        data = worker_ctx.data
        set_request_id(
            data.get("request_id"),
            data.get("global_request_id"),
            data.get("user_id"),
            data.get("project_id"),
        )

    def get_dependency(self, worker_ctx):
        return RequestContext.from_headers(worker_ctx.data, policy=self.policy)

    def worker_teardown(self, worker_ctx):
        set_request_id(None)


class Settings(DependencyProvider):
    """Injects the service's parsed configuration (read once at start-up)."""

    def get_dependency(self, worker_ctx):
        return self.container.config["TESSERA_CONF"]
