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


def test_prerender_from_a_python_without_layerwise_uses_the_project_venv(tmp_path):
    """Quarto runs chapters/prerender.py with the Python on PATH, often the system's, whose venvs link
    their ``python`` to it: the script must still hand over to the project's .venv (known failure: it
    compared the resolved executables, equal for a venv, and gave up)."""
    base = getattr(sys, "_base_executable", None)
    venv = ROOT / ".venv" / "bin" / "python"
    if not venv.exists() or not base or Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("runs where the tests run in the project's .venv (make test)")
    if subprocess.run([base, "-c", "import layerwise"], capture_output=True).returncode == 0:
        pytest.skip("the base Python has layerwise installed too")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QUARTO_PROFILE": "nothing"}
    r = subprocess.run([base, str(ROOT / "chapters" / "prerender.py")], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "no params files for the Quarto profile(s) ['nothing']" in r.stderr, r.stderr
    assert "not installed" not in r.stderr


def test_report_module_has_no_command_line_of_its_own():
    """One command line (cli.py): `python -m layerwise.book.report` is gone, `layerwise prerender` replaces it."""
    from layerwise import cli
    from layerwise.book import report

    assert not hasattr(report, "main")
    assert "prerender" in cli.build_parser().format_help()


# --------------------------------------------------------------------------------------------------
# manners (issue #14, item 7): help everywhere, --version, -v/-q after the subcommand, chatter to a log
# --------------------------------------------------------------------------------------------------

def test_every_subcommand_and_argument_has_help():
    import argparse

    from layerwise import cli

    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subs.choices) == set(cli.COMMANDS) and "export" in parser.format_help()
    assert "``" not in parser.format_help() and "LAYERWISE_CACHE" in parser.format_help()
    for name, sub in subs.choices.items():
        assert sub.description and "example:" in sub.format_help(), name
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


def test_version_and_verbosity_flags_after_the_subcommand(capsys):
    from layerwise import __version__, cli

    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    parser = cli.build_parser()
    for argv in (["check", "p.yml", "-v"], ["-v", "check", "p.yml"], ["run", "--params", "p.yml", "--verbose"]):
        args = parser.parse_args(argv)
        assert args.verbose and not args.quiet, argv
    assert parser.parse_args(["analyze", "p.yml", "-q"]).quiet
    assert not parser.parse_args(["analyze", "p.yml"]).verbose
    r = run_cli("check", "params/demo.yml", "-v")
    assert r.returncode == 0, r.stderr


def test_trainer_and_library_chatter_go_to_the_log_file(tmp_path, monkeypatch, capfd):
    """The Trainer's metric records (``{'eval_loss': ...}``) and library logs stay off the terminal;
    the log file gets them; progress bars stay (stderr)."""
    from layerwise import cli
    from layerwise.model.testing import tiny_model_dir, write_tiny_jsonl

    model = tiny_model_dir("bert")
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path / "cache"))
    data = write_tiny_jsonl(tmp_path / "reviews.jsonl", 40, seed=2)
    params = tmp_path / "tiny.yml"
    params.write_text(yaml.safe_dump({"name": "tiny", "model": {"id": str(model)}, "dataset": {"source": str(data)},
                                      "finetune": {"num_train": 24, "num_test": 16, "epochs": 2, "batch_size": 8,
                                                   "logging_steps": 1}}))
    capfd.readouterr()
    assert cli.main(["finetune", str(params)]) == 0
    out, err = capfd.readouterr()
    assert out.splitlines()[0].startswith("trained: ") and "test accuracy" in out
    assert not [ln for ln in (out + err).splitlines() if "{'" in ln or "eval_loss" in ln], out + err
    log_text = (tmp_path / "cache" / "layerwise.log").read_text()
    assert "trainer step" in log_text and "eval_loss" in log_text
