import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

from histosynth.cli.main import cli
from histosynth.report.page import find_train_stats, read_train_stats, run
from histosynth.report.svg import bar_chart, line_chart, scatter_chart


class _Tags(HTMLParser):
    """Collects tags and attributes; checks that non-void elements are closed in order."""

    VOID = {"meta", "img", "br", "link", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack, self.attrs, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        self.attrs.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.attrs.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


def test_report_is_one_self_contained_page(evaluation):
    path = run(evaluation["out"]).folder
    html = path.read_text()
    tags = parse(html)
    assert not tags.errors and tags.stack == [], (tags.errors, tags.stack)
    srcs = [a.get("src") for t, a in tags.attrs if t == "img"]
    assert len(srcs) > 20 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", html)  # nothing fetched from elsewhere
    assert not any(t in ("script", "link", "iframe") for t, _ in tags.attrs)
    assert html.count("<svg") >= 4  # FD per detector, precision/recall, TSTR, loss


def test_report_lays_variants_side_by_side_with_every_section(evaluation):
    html = run(evaluation["out"], evaluation["root"] / "r.html").folder.read_text()
    for heading in ("Distribution metrics", "Samples", "Per-class Fréchet distance", "Mask fidelity",
                    "Train on synthetic, test on real", "Training", "Memorisation and privacy", "Hallucination flags"):  # fmt: skip
        assert f">{heading}</h2>" in html
    assert '<th>map</th><th>tokens</th><th><span class="ref">real-heldout</span></th>' in html
    for det in ("pixels-32", "random-init-cnn"):
        assert f"FD under {det}" in html
    m = evaluation["metrics"]
    fd = m["metrics"]["tokens"]["fd_pixels-32"]
    assert f"{fd:.3g}" in html
    assert "real+synthetic:map@1" in html and "real+synthetic:tokens@1" in html


def test_flagged_outliers_are_listed_with_scores(evaluation):
    m = evaluation["metrics"]
    flagged = {r["id"] for r in m["flags"]["tokens"]["images"]}
    noise = set(evaluation["odd"].index["id"][:2])
    assert noise <= flagged, m["flags"]["tokens"]
    assert all(r["density_ratio"] > 1 for r in m["flags"]["tokens"]["images"] if r["id"] in noise)
    html = run(evaluation["out"], evaluation["root"] / "f.html").folder.read_text()
    for pid in noise:
        assert pid in html
    assert "low density among real features under every detector" in html


def test_cli_report_with_training_stats(evaluation, tmp_path):
    stats = tmp_path / "stats.jsonl"
    stats.write_text("".join(json.dumps({"step": s, "loss": 1.0 / (s + 1), "lr": 1e-4}) + "\n" for s in range(50))
                     + "not json\n")  # fmt: skip
    assert read_train_stats(stats)[:2] == [(0.0, 1.0), (1.0, 0.5)]
    out = tmp_path / "page.html"
    res = CliRunner().invoke(
        cli, ["report", str(evaluation["out"]), "--out", str(out), "--train-stats", f"map={stats}"]
    )
    assert res.exit_code == 0, res.output
    assert "Diffusion training loss" in out.read_text()
    res = CliRunner().invoke(cli, ["report", str(evaluation["out"]), "--train-stats", "nonsense"])
    assert res.exit_code != 0 and "NAME=FILE" in res.output


def test_training_stats_found_through_the_dataset_manifest(tmp_path):
    from histosynth.artifacts import write_manifest

    model = tmp_path / "run" / "checkpoints" / "step-10"
    model.mkdir(parents=True)
    (tmp_path / "run" / "stats.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    write_manifest(tmp_path / "ds", "patch-dataset", {}, {"model": str(model)})
    assert find_train_stats(tmp_path / "ds") == tmp_path / "run" / "stats.jsonl"
    assert find_train_stats(tmp_path / "nowhere") is None


def test_moved_dataset_is_named_and_skipped(evaluation, tmp_path):
    out = tmp_path / "eval"
    shutil.copytree(evaluation["out"], out)
    m = json.loads((out / "metrics.json").read_text())
    m["synthetic"]["tokens"]["folder"] = str(tmp_path / "gone")
    (out / "metrics.json").write_text(json.dumps(m))
    html = run(out).folder.read_text()
    assert "Dataset not readable, pictures skipped: tokens" in html and not parse(html).errors


def test_svg_charts_are_valid_xml_and_survive_missing_values():
    charts = [
        bar_chart(
            {"a": {"x": 1.0, "y": None}, "b": {"x": float("nan"), "y": 3.0}},
            "t <&>",
            "v",
            {"a": {"x": (0.5, 1.5)}},
        ),  # fmt: skip
        bar_chart(
            {"a very long condition name": {"m": 0.5}, "another long one": {"m": 0.2}}, "t", "v", width=300
        ),
        scatter_chart([("s", "d1", 0.2, 0.9), ("s2", "d2", None, 0.1)], "pr", "recall", "precision"),
        line_chart({"loss": [(0, 1.0), (1, 0.1), (2, -1.0)]}, "l", "step", "loss", log_y=True),
        line_chart({}, "empty", "x", "y"),
    ]
    for svg in charts:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
    assert "t &lt;&amp;&gt;" in charts[0]


@pytest.mark.parametrize(
    "value,text", [(None, "—"), (float("nan"), "—"), (3, "3"), (0.123456, "0.123"), (1e-5, "1.00e-05")]
)
def test_number_formatting(value, text):
    from histosynth.report.tables import fmt

    assert fmt(value) == text


def test_cli_writes_a_variant_sample_grid_png(evaluation, tmp_path):
    from PIL import Image

    png = tmp_path / "grid.png"
    args = ["report", str(evaluation["out"]), "--out", str(tmp_path / "p.html"), "--samples", "3"]
    res = CliRunner().invoke(cli, [*args, "--grid", f"map={png}"])
    assert res.exit_code == 0, res.output
    grid = np.asarray(Image.open(png))
    assert grid.shape[0] > 3 * 128 and grid.shape[1] > 4 * 128  # 3 rows: map | crops | synthetic | nearest
    assert grid[:, 128 + 10 : 2 * 128].std() > 0  # the crops column holds the exemplar, not a blank
    res = CliRunner().invoke(cli, [*args, "--grid", f"nope={png}"])
    assert res.exit_code != 0 and "no samples of variant 'nope'" in res.output
