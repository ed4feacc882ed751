import json
import math

import pytest

from histosynth.studio.reader_study import Rating
from histosynth.studio.scoring import mean_interval, score_ratings, score_study, wilson_interval


def test_wilson_matches_published_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mean_interval():
    m = mean_interval([1.0, 2.0, 3.0, 4.0])
    # t(0.975, 3) = 3.182446; sd = 1.290994
    assert m["mean"] == 2.5 and m["sd"] == pytest.approx(1.290994, abs=1e-6)
    assert m["ci"][1] - 2.5 == pytest.approx(3.182446 * 1.290994 / 2, abs=1e-5)
    assert mean_interval([])["mean"] is None and mean_interval([3.0])["sd"] is None


def test_score_ratings_by_hand():
    key = {"a": "real", "b": "real", "c": "synthetic", "d": "synthetic"}
    ratings = [Rating("r1", "a", 5, "real"), Rating("r1", "b", 3, "synthetic"),
               Rating("r1", "c", 4, "real"), Rating("r1", "d", 2, "synthetic"),
               Rating("r2", "a", 4, "real")]  # fmt: skip
    s = score_ratings(ratings, key)
    d = s["discrimination"]
    assert (d["n"], d["correct"], d["accuracy"]) == (5, 3, 0.6)
    assert d["ci"] == pytest.approx(list(wilson_interval(3, 5)))
    assert d["p_value_vs_chance"] == pytest.approx(1.0)
    assert s["per_rater"]["r1"]["accuracy"] == 0.5 and s["per_rater"]["r2"]["accuracy"] == 1.0
    assert s["realism"]["real"]["mean"] == 4.0 and s["realism"]["synthetic"]["mean"] == 3.0
    assert s["realism"]["synthetic"]["called_real"] == 0.5 and s["realism"]["real"]["called_real"] == 2 / 3


def test_score_study_and_cli(study, tmp_path):
    from click.testing import CliRunner

    from histosynth.cli.main import cli

    key = json.loads((study.folder / "key.json").read_text())["items"]
    for item in study.order("ann"):
        study.add(Rating("ann", item, 3, key[item]["source"]))  # always right
    study.add(Rating("bob", study.items[0], 1, "real"))
    s = score_study(study.folder)
    assert s["per_rater"]["ann"]["accuracy"] == 1.0 and s["complete_raters"] == ["ann"]
    assert s["items"] == 6 and s["ratings"] == 7
    res = CliRunner().invoke(
        cli, ["reader-study", "score", str(study.folder), "-o", str(tmp_path / "s.json")]
    )
    assert res.exit_code == 0, res.output
    assert "discrimination accuracy" in res.output and "mean realism (1-5)" in res.output
    assert json.loads((tmp_path / "s.json").read_text())["discrimination"] == s["discrimination"]
