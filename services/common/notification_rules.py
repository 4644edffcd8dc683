"""Which notifications a deployment sends, from its options alone: no eventlet, so the
gateway can ask too (services/common/notifications.py sends them)."""

from __future__ import annotations

from oslo_config import cfg

NO_DRIVERS = {"", "noop"}


def is_disabled(event_type: str, disabled: list[str]) -> bool:
    """Whether ``disabled_notifications`` names the event or a group it belongs to.
    Glance matches the full name and the text before the first dot (``image``); a
    dotted group its help text lists (``image.member``) counts too."""
    parts = event_type.split(".")
    names = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
    return any(name in names for name in disabled)


def drivers(conf: cfg.ConfigOpts) -> list[str]:
    return [d for d in conf.oslo_messaging_notifications.driver if d not in NO_DRIVERS]


def sends(conf: cfg.ConfigOpts, event_type: str) -> bool:
    """Whether ``conf`` has a notification driver and leaves ``event_type`` enabled."""
    return bool(drivers(conf)) and not is_disabled(event_type, conf.disabled_notifications)
