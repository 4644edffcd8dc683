"""The request context: who is calling, and the request id that follows the call through
every service. The gateway builds it; it crosses RPC as nameko context headers
(``nameko.<key>``) and services trust it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


@dataclass(frozen=True)
class RequestContext:
    project_id: str | None = None
    user_id: str | None = None
    roles: tuple[str, ...] = field(default_factory=tuple)
    is_admin: bool = False
    request_id: str = field(default_factory=new_request_id)
    #: The caller's own ``X-OpenStack-Request-ID`` (oslo's global request id), when it
    #: sent a valid one: it crosses RPC and is logged beside the local ``request_id``.
    global_request_id: str | None = None
    #: The deployment's rules (services/common/policy.py); not sent over RPC: each
    #: service attaches its own. None means Glance's defaults.
    policy: object | None = field(default=None, compare=False, repr=False)

    def to_headers(self) -> dict:
        """The context as nameko context data (AMQP headers without the prefix)."""
        headers = {
            "roles": list(self.roles),
            "is_admin": self.is_admin,
            "request_id": self.request_id,
        }
        if self.project_id is not None:
            headers["project_id"] = self.project_id
        if self.user_id is not None:
            headers["user_id"] = self.user_id
        if self.global_request_id is not None:
            headers["global_request_id"] = self.global_request_id
        return headers

    @classmethod
    def from_headers(cls, data: dict, policy=None) -> RequestContext:
        return cls(
            project_id=data.get("project_id"),
            user_id=data.get("user_id"),
            roles=tuple(data.get("roles") or ()),
            is_admin=bool(data.get("is_admin")),
            request_id=data.get("request_id") or new_request_id(),
            global_request_id=data.get("global_request_id") or None,
            policy=policy,
        )

    def can(self, action: str, target: dict) -> None:
        """Raise Forbidden unless the policy allows ``action`` on ``target``."""
        from services.common.policy import default_policy

        (self.policy or default_policy()).authorize(action, target, self)

    def may(self, action: str, target: dict) -> bool:
        from services.common.policy import default_policy

        return (self.policy or default_policy()).allows(action, target, self)
