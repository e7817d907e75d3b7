"""The command line: `layerwise check` on good and malformed params; errors are one line, exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "layerwise.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_check_demo_exits_zero():
    r = run_cli("check", "params/demo.yml")
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout and "270 train / 180 probe / 180 test" in r.stdout


BAD = {
    "wrong type": ({"finetune": {"num_train": "lots"}}, "finetune.num_train"),
    "unknown key": ({"colour": "red"}, "colour"),
    "missing text column": ({"dataset": {"source": "embedded:demo-fr", "text_column": "review"}}, "text_column"),
    "missing path": ({"dataset": {"source": "./absent/data.csv"}}, "dataset.source"),
    "unknown model offline": ({"model": {"id": "someone/no-such-model-xyz"}}, "model.id"),
    "too many train examples": ({"finetune": {"num_train": 100000, "num_test": 10}}, "finetune.num_train"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_params_exit_nonzero_with_one_clear_message(tmp_path, case):
    change, field = BAD[case]
    data = yaml.safe_load((ROOT / "params" / "demo.yml").read_text())
    for k, v in change.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    p = tmp_path / "bad.yml"
    p.write_text(yaml.safe_dump(data))
    r = run_cli("check", str(p))
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr
    assert err.startswith("error: ") and str(p) in err and field in err and "Fix:" in err
    assert len(err.splitlines()) == 1


def test_prerender_without_profile_params_is_one_clear_error(tmp_path):
    """`layerwise prerender` (Quarto's pre-render) and chapters/prerender.py, which calls it: a profile
    that names no params file stops the render with one line and exit status 2."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QUARTO_PROFILE": "nothing"}
    for cmd in ([sys.executable, "-m", "layerwise.cli", "prerender"],
                [sys.executable, str(ROOT / "chapters" / "prerender.py")]):
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert err.startswith("error: ") and "no params files for the Quarto profile(s) ['nothing']" in err \
            and "Fix:" in err
    assert not (tmp_path / "report").exists()


def test_report_module_has_no_command_line_of_its_own():
    """One command line (cli.py): `python -m layerwise.report` is gone, `layerwise prerender` replaces it."""
    from layerwise import cli, report

    assert not hasattr(report, "main")
    assert "prerender" in cli.build_parser().format_help()
