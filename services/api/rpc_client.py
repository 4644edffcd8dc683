"""The gateway's RPC client: nameko's wire protocol on a pool of plain AMQP connections.

Why not nameko's ``ClusterRpcProxy``: it pulls eventlet into the gateway process, takes
its context data once per proxy rather than per call, and publishes every request as a
persistent message with publisher confirms. This client speaks the same protocol (the
``nameko-rpc`` topic exchange, ``<service>.<method>`` routing keys, JSON
``{"args", "kwargs"}`` bodies, ``nameko.*`` context headers, replies routed to a
per-connection reply queue) but sends each request transient and unconfirmed with the
``mandatory`` flag: a request for a service with no running replica comes straight back
as a basic.return (503), and a lost request or reply ends in the call's timeout (503).

One connection is used by one thread at a time; the pool hands them out per call.
"""

from __future__ import annotations

import json
import logging
import queue
import time
import uuid
from urllib.parse import unquote, urlparse

import amqp

from services.common.context import RequestContext
from services.common.errors import ServiceUnavailable, TesseraError, from_remote

log = logging.getLogger(__name__)

RPC_EXCHANGE = "nameko-rpc"
CONNECTION_ERRORS = (OSError, amqp.exceptions.AMQPError, amqp.exceptions.RecoverableConnectionError)


class RemoteServiceError(Exception):
    """A service failed unexpectedly (not one of Tessera's typed errors)."""


class NotSent(Exception):
    """The request could not be published: the connection was dead (safe to retry)."""


def connection_params(amqp_uri: str) -> dict:
    url = urlparse(amqp_uri.split(";")[0])
    vhost = unquote(url.path[1:]) if len(url.path) > 1 else "/"
    return {
        "host": f"{url.hostname or '127.0.0.1'}:{url.port or 5672}",
        "userid": unquote(url.username or "guest"),
        "password": unquote(url.password or "guest"),
        "virtual_host": vhost,
    }


class RpcConnection:
    """One AMQP connection with its own reply queue."""

    def __init__(self, amqp_uri: str, connect_timeout: float = 5.0):
        self.connection = amqp.Connection(
            connect_timeout=connect_timeout, **connection_params(amqp_uri)
        )
        self.connection.connect()
        self.channel = self.connection.channel()
        self.reply_key = str(uuid.uuid4())
        self.channel.exchange_declare(RPC_EXCHANGE, "topic", durable=True, auto_delete=False)
        reply_queue = f"rpc.reply-tessera-api-{self.reply_key}"
        self.channel.queue_declare(reply_queue, exclusive=True, auto_delete=True)
        self.channel.queue_bind(reply_queue, RPC_EXCHANGE, routing_key=self.reply_key)
        self.channel.basic_consume(reply_queue, no_ack=True, callback=self._on_reply)
        self.channel.events["basic_return"].add(self._on_return)
        self._waiting_for: str | None = None
        self._reply: dict | None = None
        self._returned = False

    def _on_reply(self, message) -> None:
        if message.properties.get("correlation_id") == self._waiting_for:
            self._reply = json.loads(message.body)

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        if message.properties.get("correlation_id") == self._waiting_for:
            self._returned = True

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
        message = amqp.Message(
            json.dumps({"args": list(args), "kwargs": kwargs}),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=1,
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
        while self._reply is None and not self._returned:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.connection.drain_events(timeout=remaining)
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

    def __init__(self, amqp_uri: str, timeout: float, max_idle: int = 32):
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self._idle: queue.LifoQueue[RpcConnection] = queue.LifoQueue(maxsize=max_idle)

    def _checkout(self) -> RpcConnection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            try:
                return RpcConnection(self.amqp_uri)
            except CONNECTION_ERRORS as exc:
                log.error("cannot connect to the message broker: %s", exc)
                raise ServiceUnavailable(
                    "The image service cannot reach its message broker; try again later."
                ) from None

    def _checkin(self, conn: RpcConnection) -> None:
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def call(self, service: str, method: str, ctx: RequestContext, *args, **kwargs):
        """Call ``service.method(*args, **kwargs)``; typed errors are raised again."""
        for attempt in (1, 2):
            conn = self._checkout()
            try:
                reply = conn.call(service, method, ctx, args, kwargs, self.timeout)
            except TimeoutError:
                conn.close()
                log.error("%s.%s did not answer within %ss", service, method, self.timeout)
                raise ServiceUnavailable(
                    f"The {service} service did not answer in time; try again later."
                ) from None
            except ServiceUnavailable:
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
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
