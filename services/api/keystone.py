"""Keystone mode: keystonemiddleware's auth_token in front of the app, configured from
the ``[keystone_authtoken]`` section of the same config file."""

from __future__ import annotations

from keystonemiddleware import auth_token


def wrap_with_auth_token(wsgi_app, conf):
    return auth_token.AuthProtocol(wsgi_app, {"oslo_config_config": conf,
                                              "delay_auth_decision": False})
