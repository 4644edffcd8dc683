"""deploy/tessera.conf.sample is oslo-config-generator's output over the options the code
registers (the ``oslo.config.opts`` entry point ``tessera``): regenerate it with
``make sample-config`` after adding an option. The policy rules are published too
(``oslo.policy.policies``), for oslopolicy-sample-generator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def test_the_committed_sample_is_the_generator_output(tmp_path):
    out = tmp_path / "tessera.conf.sample"
    subprocess.run(
        [
            BIN / "oslo-config-generator",
            "--config-file",
            ROOT / "deploy" / "tessera-config-generator.conf",
            "--output-file",
            out,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    committed = (ROOT / "deploy" / "tessera.conf.sample").read_text()
    assert committed == out.read_text(), "deploy/tessera.conf.sample is stale: make sample-config"


def test_the_sample_lists_every_registered_option():
    from services.common.opts import list_opts

    sample = (ROOT / "deploy" / "tessera.conf.sample").read_text()
    for group, opts in list_opts():
        assert f"[{group}]" in sample
        for opt in opts:
            assert f"#{opt.dest} =" in sample or f"{opt.dest} =" in sample, (group, opt.dest)


def test_policy_sample_generator_finds_the_rules():
    result = subprocess.run(
        [BIN / "oslopolicy-sample-generator", "--namespace", "tessera"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '#"get_image":' in result.stdout
    assert '#"add_image":' in result.stdout
