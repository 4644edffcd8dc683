"""Tripwire for services.launch.quicken_reconnect: nameko's QueueConsumer still
(re)connects through kombu's ConsumerMixin.establish_connection, which calls
``ensure_connection`` (kombu's ``_ensure_connection``) with the intervals the adapter
sets."""

from __future__ import annotations

import inspect

from kombu import Connection
from kombu.mixins import ConsumerMixin
from nameko.messaging import QueueConsumer


def test_reconnect_adapter():
    assert issubclass(QueueConsumer, ConsumerMixin)
    assert "establish_connection" not in vars(QueueConsumer)
    source = inspect.getsource(ConsumerMixin.establish_connection)
    assert "conn.ensure_connection(self.on_connection_error" in source
    assert "self.establish_connection()" in inspect.getsource(ConsumerMixin.Consumer)
    parameters = inspect.signature(Connection._ensure_connection).parameters
    assert {"interval_start", "interval_step", "interval_max"} <= set(parameters)
