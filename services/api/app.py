"""The gateway's app factory: ``create_app(conf)``. No module-level app or connection."""

from __future__ import annotations

import logging

from flask import Flask, g, request

from services.api import image_data, images, members, metadefs, versions
from services.api.auth import context_from_request
from services.api.errors import register_error_handlers
from services.api.gateway import check_url
from services.api.middleware import ENV_REQUEST_ID, GLOBAL_REQ_ID, build_pipeline
from services.api.rpc_client import RpcClient
from services.common.context import new_request_id
from services.common.image_schema import image_schema, image_validator
from services.common.logs import set_request_id

log = logging.getLogger(__name__)


def create_app(conf, rpc_client: RpcClient | None = None) -> Flask:
    app = Flask("tessera")
    app.json.sort_keys = False
    app.json.compact = True
    app.extensions.update(
        {
            "tessera.conf": conf,
            "tessera.rpc": rpc_client or RpcClient.from_config(conf),
            "tessera.image_schema": image_schema(conf),
            "tessera.image_validator": image_validator(conf),
        }
    )
    flavor = (conf.paste_deploy.flavor or "").strip().lower()

    @app.before_request
    def _identify():
        # the ids the pipeline (services/api/middleware.py) gave the request
        g.request_id = request.environ.get(ENV_REQUEST_ID) or new_request_id()
        g.global_request_id = request.environ.get(GLOBAL_REQ_ID)
        set_request_id(g.request_id, g.global_request_id)
        g.context = context_from_request(request, flavor, g.request_id, g.global_request_id)
        check_url()

    @app.teardown_request
    def _forget(_exc):
        set_request_id(None)

    register_error_handlers(app)
    app.register_blueprint(versions.bp)
    app.register_blueprint(images.bp)
    app.register_blueprint(image_data.bp)
    app.register_blueprint(members.bp)
    app.register_blueprint(metadefs.bp)
    app.wsgi_app = build_pipeline(app.wsgi_app, conf, app.extensions["tessera.rpc"], flavor)
    return app
