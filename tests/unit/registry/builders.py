"""Request contexts and change builders shared by the registry domain tests."""

from __future__ import annotations

from services.api.patch import parse_changes
from services.api.schemas import SchemaValidator, image_schema
from services.common.context import RequestContext

OWNER = RequestContext(project_id="p-owner", user_id="u-owner", roles=("member", "reader"))
OTHER = RequestContext(project_id="p-other", user_id="u-other", roles=("member", "reader"))
ADMIN = RequestContext(
    project_id="p-admin", user_id="u-admin", roles=("admin", "member"), is_admin=True
)
V21 = "application/openstack-images-v2.1-json-patch"
V20 = "application/openstack-images-v2.0-json-patch"


def patch(conf, *ops: tuple, media: str = V21) -> list[dict]:
    """Checked changes, as the gateway hands them to the registry; each op is
    ``(op, path)`` or ``(op, path, value)``."""

    def item(op: str, path: str, *value) -> dict:
        head = {"op": op, "path": path} if media == V21 else {op: path}
        return {**head, **({"value": value[0]} if value else {})}

    body = [item(*o) for o in ops]
    return parse_changes(media, lambda: body, SchemaValidator(image_schema(conf)))
