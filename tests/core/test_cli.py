import subprocess
import sys

from click.testing import CliRunner

from histosynth.cli.main import cli, main


def test_help_lists_only_present_commands():
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0
    assert "doctor" in res.output and "synth-slide" in res.output
    from histosynth.cli.main import COMMANDS, LazyGroup

    listed = LazyGroup().list_commands(None)
    for name in listed:
        assert cli.get_command(None, name) is not None, name
    assert set(listed) <= set(COMMANDS)


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys; from histosynth.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'diffusers', 'openslide', 'pandas', 'faiss') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_doctor_runs_offline():
    res = CliRunner().invoke(cli, ["doctor"])
    assert res.exit_code == 0, res.output
    assert "openslide" in res.output and "torch" in res.output and "cpu" in res.output


def test_python_m_entry():
    out = subprocess.run([sys.executable, "-m", "histosynth", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "version" in out.stdout


def test_synth_slide_command(tmp_path):
    out = tmp_path / "s.tif"
    res = CliRunner().invoke(cli, ["synth-slide", str(out), "--size", "512x384", "--levels", "2"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and (tmp_path / "s.labels.png").is_file() and (tmp_path / "s.classes.json").is_file()


def test_user_error_is_one_line(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["synth-slide", str(tmp_path / "x.tif"), "--size", "bad"])
    assert exc.value.code == 2
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err
