"""The URL filter (services/common/url_filter.py): Glance 33's [import_filtering_opts]
meaning, and the stricter address rules. No traffic: only IP literals and localhost."""

from __future__ import annotations

import pytest

from services.common.url_filter import UrlFilter, UrlRefused

DEFAULT = UrlFilter()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://127.0.0.2:80/x",
        "http://localhost/x",  # resolves to loopback
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
        "http://172.16.0.1/x",
        "http://192.168.1.1/x",
        "http://100.64.0.1/x",  # shared address space
        "http://0.0.0.0/x",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://[fd00::1]/x",
        "http://[::ffff:127.0.0.1]/x",  # IPv4-mapped
        "http://224.0.0.1/x",
    ],
)
def test_non_public_addresses_are_refused_by_default(url):
    with pytest.raises(UrlRefused, match="does not pass filtering"):
        DEFAULT.resolve(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://8.8.8.8/image",
        "gopher://8.8.8.8/x",
        "/relative",
        "http:///nohost",
        "http://2130706433/x",  # 127.0.0.1 as a number
        "http://0x7f000001/x",
        "http://127.1/x",
        "http://8.8.8.8:8080/x",  # not an allowed port
        "http://user:pw@8.8.8.8/x",
        "",
        None,
    ],
)
def test_refused_without_dns(url):
    with pytest.raises(UrlRefused):
        DEFAULT.check(url)


def test_public_address_passes_and_is_pinned():
    target = DEFAULT.resolve("https://8.8.8.8/a/b?c=d")
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https",
        "8.8.8.8",
        443,
        "/a/b?c=d",
        "8.8.8.8",
    )


def test_allowed_hosts_allow_loopback_and_private():
    allowing = UrlFilter(allowed_hosts=["127.0.0.1", "10.0.0.5"], allowed_ports=[8080])
    assert allowing.resolve("http://127.0.0.1:8080/x").address == "127.0.0.1"
    assert allowing.resolve("http://10.0.0.5:8080/x").address == "10.0.0.5"
    with pytest.raises(UrlRefused, match="host 10.0.0.6 is not allowed"):
        allowing.check("http://10.0.0.6:8080/x")  # the allow list wins
    with pytest.raises(UrlRefused, match="port 80"):
        allowing.check("http://127.0.0.1/x")


def test_allowed_wins_over_disallowed():
    both = UrlFilter(
        allowed_schemes=["https"],
        disallowed_schemes=["https"],
        allowed_hosts=["8.8.8.8"],
        disallowed_hosts=["8.8.8.8"],
        allowed_ports=[443],
        disallowed_ports=[443],
    )
    assert both.check("https://8.8.8.8/").port == 443
    with pytest.raises(UrlRefused, match="scheme http"):
        both.check("http://8.8.8.8/")


def test_disallowed_lists():
    refusing = UrlFilter(
        allowed_schemes=[],
        disallowed_schemes=["http"],
        disallowed_hosts=["8.8.4.4"],
        allowed_ports=[],
        disallowed_ports=[8443],
    )
    assert refusing.check("https://8.8.8.8:9000/").port == 9000
    for url in ("http://8.8.8.8/", "https://8.8.4.4/", "https://8.8.8.8:8443/"):
        with pytest.raises(UrlRefused):
            refusing.check(url)


def test_fetchable_schemes_only():
    ftp = UrlFilter(allowed_schemes=["ftp"], allowed_ports=[])
    with pytest.raises(UrlRefused, match="only http and https"):
        ftp.check("ftp://8.8.8.8/x")
