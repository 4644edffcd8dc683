"""``tessera-run``'s command line (services/stack.py): its own ``--cluster`` flag is
taken out of the arguments passed on to each child, and ``--help`` lists it beside the
oslo.config options every service takes."""

from __future__ import annotations

import pytest

from services.stack import own_arguments


def test_cluster_flag_is_tessera_runs_own():
    config = ["--config-file", "tessera.conf"]
    assert own_arguments(["--cluster", *config]) == (True, config)
    assert own_arguments(config) == (False, config)
    assert own_arguments(["--cluster", "--nocluster"]) == (False, [])
    assert own_arguments(["--nocluster", "--cluster"]) == (True, [])


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_cluster(flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        own_arguments([flag])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tessera-run [-h] [--cluster]")
    for option in ("--cluster ", "--config-file PATH", "--debug", "--version"):
        assert f"\n  {option}" in out
    assert "make run-cluster" in out
