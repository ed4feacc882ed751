import socket

import pytest
from click.testing import CliRunner

from histosynth.cli.main import cli


def test_commands_are_listed_and_documented():
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert "studio" in top.output and "reader-study" in top.output
    studio = runner.invoke(cli, ["studio", "--help"])
    assert studio.exit_code == 0
    for opt in ("--checkpoint", "--crop-bank", "--port", "--maps", "--reader-study"):
        assert opt in studio.output
    rs = runner.invoke(cli, ["reader-study", "--help"])
    assert all(sub in rs.output for sub in ("build", "serve", "score"))


def test_build_command(tiny_dataset, other_dataset, tmp_path):
    out = tmp_path / "study"
    args = ["reader-study", "build", "--real", str(tiny_dataset), "--synthetic", str(other_dataset),
            "-o", str(out), "--n-real", "2", "--n-synthetic", "2"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "4 images (2 real, 2 synthetic)" in res.output and "keep it away from the raters" in res.output
    assert (out / "manifest.json").is_file()


def test_busy_port_is_one_sentence():
    from histosynth.studio.server import bind

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is in use; choose another with --port"):
            bind(port)


def test_missing_checkpoint_is_a_user_error(crop_bank, tmp_path):
    from histosynth.cli.main import main

    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["studio", "--checkpoint", str(tmp_path / "empty"), "--crop-bank", str(crop_bank.folder)])
    assert exc.value.code == 2


def test_studio_command_serves_the_real_model(tiny_checkpoint, crop_bank):
    """``histosynth studio`` in its own process (imports as a user's shell would), then Ctrl-C."""
    import json
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    from tests.studio.http_client import call

    args = [sys.executable, "-m", "histosynth", "studio", "--checkpoint", str(tiny_checkpoint),
            "--crop-bank", str(crop_bank.folder), "--port", "0"]  # fmt: skip
    env = {**os.environ, "HISTOSYNTH_PROGRESS": "0", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline())
            if "open http://" in lines[-1]:
                break
        url = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=([0-9a-f]{48})", "".join(lines))
        assert url, "".join(lines)
        base, token = url.groups()
        assert call(base + "/api/config")[0] == 401  # not without the printed token
        status, _, body = call(base + "/api/config", headers={"Authorization": f"token {token}"})
        cfg = json.loads(body)
        assert status == 200 and cfg["size"] == 64 and "dpm++" in cfg["samplers"]
        assert cfg["defaults"]["sampler"] == "dpm++-karras"
        assert [c["name"] for c in cfg["classes"]] == crop_bank.classes.names
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0 and "histosynth studio: stopped" in out, out
