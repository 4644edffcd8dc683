"""Keystone mode: keystonemiddleware's auth_token in front of the API, configured from
the ``[keystone_authtoken]`` section of the same config file, exactly as Glance's
install guide writes it. Version discovery (``/`` and ``/versions``) stays open, as in
Glance, so that clients can find the API before they hold a token."""

from __future__ import annotations

from keystonemiddleware import auth_token

UNAUTHENTICATED_PATHS = ("/", "/versions")


def wrap_with_auth_token(wsgi_app, conf):
    protected = auth_token.AuthProtocol(wsgi_app, {"oslo_config_config": conf})

    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if path.rstrip("/") in ("", "/versions"):
            return wsgi_app(environ, start_response)
        return protected(environ, start_response)

    return dispatch
