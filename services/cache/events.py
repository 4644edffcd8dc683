"""Broadcast event handlers with a queue of each node's own that outlives its restarts.

nameko's BROADCAST handlers name their queue after a ``broadcast_identifier`` that is a
new uuid per start, with an auto-deleted queue: events sent while a node is down are
lost. A node's cache must hear of every delete and deactivation, so here the identifier
is the node's id (kept in its cache directory, services/cache/index.py) and delivery is
reliable: the durable queue ``evt-registry-<event>--cache.<method>-<node id>`` keeps
what is sent while the node is down (up to a week: a queue unused for longer is deleted
by RabbitMQ, so a retired node leaves nothing behind). With the cache off there is
nothing to keep, and the handler falls back to nameko's own (a fresh, auto-deleted
queue per start).

Tripwire: nameko 2.14's ``EventHandler.setup`` builds ``self.queue``, declared later;
tests/integration/test_image_cache.py checks the queues' names and x-expires."""

from __future__ import annotations

import uuid

from nameko.events import BROADCAST, EventHandler

from services.cache.index import node_id
from services.common.config import image_cache_settings

#: Seconds after which RabbitMQ deletes a node's queue that nobody has consumed from.
QUEUE_EXPIRES = 7 * 24 * 3600


def _node_id(config: dict) -> str | None:
    """This node's id when its cache is on."""
    conf = config.get("TESSERA_CONF")
    if conf is None:
        return None
    settings = image_cache_settings(conf)
    return node_id(settings.directory) if settings.enabled else None


class NodeBroadcastHandler(EventHandler):
    def __init__(self, source_service: str, event_type: str, **kwargs):
        super().__init__(
            source_service, event_type, handler_type=BROADCAST, reliable_delivery=True, **kwargs
        )

    @property
    def broadcast_identifier(self):
        # read by nameko on the unbound prototype too (no container yet)
        container = getattr(self, "container", None)
        node = _node_id(container.config) if container is not None else None
        return node or uuid.uuid4().hex

    def setup(self):
        node = _node_id(self.container.config)
        if node is None:
            self.reliable_delivery = False  # the cache is off: nothing to keep
        super().setup()
        if node is not None:
            # a node gone for good (its cache directory removed) leaves queues nobody
            # reads: RabbitMQ deletes a queue unused for this long (x-expires)
            self.queue.expires = QUEUE_EXPIRES


node_event_handler = NodeBroadcastHandler.decorator
