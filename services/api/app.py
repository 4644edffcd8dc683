"""The gateway's app factory: ``create_app(conf)``. No module-level app or connection."""

from __future__ import annotations

import logging

from flask import Flask, g, request

from services.api import (
    cache,
    image_data,
    images,
    imports,
    locations,
    members,
    metadefs,
    stores,
    tasks,
    v1,
    versions,
)
from services.api.auth import context_from_request
from services.api.errors import register_error_handlers
from services.api.gateway import check_url
from services.api.metrics import ROUTE
from services.api.middleware import ENV_REQUEST_ID, GLOBAL_REQ_ID, LOG_CONTEXT, build_pipeline
from services.api.rpc_client import RpcClient
from services.common.config import paste_flavor
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
    flavor, _ = paste_flavor(conf)  # the auth part ("keystone+cachemanagement": keystone)

    @app.before_request
    def _identify():
        # the ids the pipeline (services/api/middleware.py) gave the request
        g.request_id = request.environ.get(ENV_REQUEST_ID) or new_request_id()
        g.global_request_id = request.environ.get(GLOBAL_REQ_ID)
        rule = request.url_rule
        if rule is not None:  # the route template, for the metrics
            request.environ[ROUTE] = rule.rule
        # the ids of this request's log lines, its access line too (services/api/middleware.py)
        environ = request.environ
        environ[LOG_CONTEXT] = set_request_id(g.request_id, g.global_request_id)
        g.context = context_from_request(request, flavor, g.request_id, g.global_request_id)
        if g.context.user_id or g.context.project_id:  # and who made it
            environ[LOG_CONTEXT] = set_request_id(
                g.request_id, g.global_request_id, g.context.user_id, g.context.project_id
            )
        check_url()

    @app.teardown_request
    def _forget(_exc):
        set_request_id(None)

    register_error_handlers(app)
    app.register_blueprint(versions.bp)
    app.register_blueprint(images.bp)
    app.register_blueprint(image_data.bp)
    app.register_blueprint(members.bp)
    app.register_blueprint(imports.bp)
    app.register_blueprint(locations.bp)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(stores.bp)
    if conf.enable_v1_api:
        app.register_blueprint(v1.bp)
    app.register_blueprint(cache.bp)
    app.register_blueprint(metadefs.bp)
    app.wsgi_app = build_pipeline(app.wsgi_app, conf, app.extensions["tessera.rpc"], flavor)
    return app
