"""Who is calling: the RequestContext of each request.

Development auth (``[paste_deploy] flavor`` empty): project, user and roles come from
the ``X-Project-Id`` (or ``X-Tenant-Id``), ``X-User-Id`` and ``X-Roles`` headers; with
none of them the caller is an admin of the ``development`` project.

Keystone auth (``flavor = keystone``): keystonemiddleware's auth_token validates the
token and sets the same headers (with ``X-Identity-Status: Confirmed``), so the context
is read the same way; the middleware is wrapped around the app in app.py."""

from __future__ import annotations

from flask import Request

from services.api.errors import Unauthorized
from services.common.context import RequestContext, new_request_id

DEV_PROJECT = "development"
ADMIN_ROLE = "admin"


# Keystone's default role implications (admin implies member implies reader): tokens
# carry the implied roles, so development auth adds them the same way.
IMPLIED_ROLES = {"admin": ("member", "reader"), "member": ("reader",)}


def _roles(header: str | None) -> tuple[str, ...]:
    return tuple(r.strip().lower() for r in (header or "").split(",") if r.strip())


def _with_implied(roles: tuple[str, ...]) -> tuple[str, ...]:
    expanded = list(roles)
    for role in roles:
        expanded += [r for r in IMPLIED_ROLES.get(role, ()) if r not in expanded]
    return tuple(expanded)


def context_from_request(
    request: Request, flavor: str, request_id: str, global_request_id: str | None = None
) -> RequestContext:
    return context_from_headers(request.headers, flavor, request_id, global_request_id)


def context_from_headers(
    headers, flavor: str, request_id: str | None = None, global_request_id: str | None = None
) -> RequestContext:
    """The context of a request with these (case-insensitive) headers."""
    project = headers.get("X-Project-Id") or headers.get("X-Tenant-Id")
    user = headers.get("X-User-Id")
    roles = _roles(headers.get("X-Roles"))
    if flavor == "keystone":
        if headers.get("X-Identity-Status", "Confirmed") != "Confirmed":
            raise Unauthorized("The request you have made requires authentication.")
    elif not (project or user or roles):
        project, roles = DEV_PROJECT, _with_implied((ADMIN_ROLE,))
    else:
        roles = _with_implied(roles)
    return RequestContext(
        project_id=project,
        user_id=user,
        roles=roles,
        is_admin=ADMIN_ROLE in roles,
        request_id=request_id or new_request_id(),
        global_request_id=global_request_id,
    )
