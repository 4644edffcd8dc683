"""Service side of RPC: nameko's ``@rpc`` with lean replies, the request context as a
dependency, and the start-up of a nameko service from a Tessera config file.

nameko publishes every reply as a persistent message with publisher confirms. A reply
is worthless once its caller has gone, and the caller times out on a lost one, so
Tessera's replies are transient and unconfirmed: that halves the broker work of a call
(README: "RPC cost").
"""

from __future__ import annotations

import logging

from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.extensions import DependencyProvider
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange

from services.common.context import RequestContext
from services.common.errors import TesseraError
from services.common.logs import set_request_id
from services.common.policy import Policy

log = logging.getLogger(__name__)


class TransientPublisher(Publisher):
    use_confirms = False
    delivery_mode = 1  # transient


class TransientResponder(Responder):
    publisher_cls = TransientPublisher


class LeanRpcConsumer(RpcConsumer):
    def handle_result(self, message, result, exc_info):
        config = self.container.config
        responder = TransientResponder(
            config[AMQP_URI_CONFIG_KEY],
            get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
            message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class LeanRpc(Rpc):
    rpc_consumer = LeanRpcConsumer()


def rpc(fn=None, **kwargs):
    """``@rpc`` for Tessera services: lean replies; TesseraErrors are expected results
    (logged briefly, not as crashes)."""
    kwargs.setdefault("expected_exceptions", (TesseraError,))
    decorate = LeanRpc.decorator(**kwargs)
    return decorate(fn) if fn else decorate


class Context(DependencyProvider):
    """Injects the caller's RequestContext, with the deployment's policy, and tags the
    worker's log lines with its request id."""

    def setup(self):
        self.policy = Policy(self.container.config["TESSERA_CONF"])

    def worker_setup(self, worker_ctx):
        set_request_id(worker_ctx.data.get("request_id"))

    def get_dependency(self, worker_ctx):
        return RequestContext.from_headers(worker_ctx.data, policy=self.policy)

    def worker_teardown(self, worker_ctx):
        set_request_id(None)


class Settings(DependencyProvider):
    """Injects the service's parsed configuration (read once at start-up)."""

    def get_dependency(self, worker_ctx):
        return self.container.config["TESSERA_CONF"]
