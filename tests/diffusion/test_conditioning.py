"""The three conditioning variants: shapes, dropping, and what each one really reads."""

import pytest
import torch

from histosynth.diffusion.conditioning import CONDITIONINGS as REGISTRY
from histosynth.diffusion.conditioning.spatial import paste_crops
from histosynth.diffusion.inputs import make_crop_batch

CONDITIONINGS = ["map", "map+crops-spatial", "map+crops-tokens"]


def _conds(den, maps, crops, **kw):
    with torch.no_grad():
        return den.conditions(maps, crops, **kw)


def test_registry_names_are_the_cli_choices():
    from histosynth.cli.train import CONDITIONINGS as CLI

    assert REGISTRY.names() == CONDITIONINGS == CLI


def test_each_variant_says_what_it_needs():
    need = {n: (REGISTRY.get(n).uses_crops, REGISTRY.get(n).reads_positions) for n in CONDITIONINGS}
    assert need == {
        "map": (False, False),
        "map+crops-spatial": (True, True),
        "map+crops-tokens": (True, False),
    }
    assert REGISTRY.get("map").preset_widths == ()
    assert set(REGISTRY.get("map+crops-tokens").preset_widths) == {"map_embed_dim", "map_channels",
                                                                   "crop_widths", "crop_grid", "crop_stats"}  # fmt: skip
    assert REGISTRY.get("map+crops-spatial").preset_widths == ("crop_stats",)


def test_unknown_arguments_are_refused():
    from histosynth.diffusion.conditioning.base import make_conditioning

    with pytest.raises(ValueError, match="'map' takes no argument 'crop_grid'"):
        make_conditioning("map", 3, 1, 32, crop_grid=2)
    with pytest.raises(ValueError, match="takes no argument 'widths'"):
        make_conditioning("map+crops-tokens", 3, 1, 32, widths=(8,))
    assert make_conditioning("map+crops-tokens", 3, 1, 32, crop_grid=3).crop_encoder.tokens_per_crop == 9


def test_no_code_compares_variant_names():
    """Variants are asked what they need; their names are compared nowhere (the table aside)."""
    import ast
    from pathlib import Path

    import histosynth

    root = Path(histosynth.__file__).parent
    table = root / "diffusion" / "conditioning" / "__init__.py"
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                operands += [
                    e for o in operands if isinstance(o, ast.Tuple | ast.List | ast.Set) for e in o.elts
                ]
                if path != table and any(
                    isinstance(o, ast.Constant) and o.value in CONDITIONINGS for o in operands
                ):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []


def test_the_name_tables_load_without_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from histosynth.diffusion.conditioning import CONDITIONINGS\n"
        "from histosynth.diffusion.backbones import BACKBONES\n"
        "from histosynth.train.config import TrainConfig\n"
        "print(CONDITIONINGS.names(), 'torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")


@pytest.mark.parametrize("name", CONDITIONINGS)
def test_shapes_null_token_and_map_dropout(name, make_denoiser, make_inputs):
    den = make_denoiser(name)
    maps, crops = make_inputs()
    cb = make_crop_batch(crops, maps, den.canvas)
    c = _conds(den, maps, cb)
    assert c.spatial.shape == (3, den.cond.spatial_channels, 16, 16)
    assert c.tokens.shape[:2] == c.mask.shape and c.tokens.shape[-1] == 32 and c.mask[:, 0].all()
    dropped = _conds(den, maps, cb, drop_map=torch.tensor([True, False, False]))
    assert not torch.allclose(dropped.spatial[0], c.spatial[0])
    torch.testing.assert_close(dropped.spatial[1:], c.spatial[1:])
    with pytest.raises(ValueError, match="class ids"):
        den.conditions(maps + 5, cb)


def test_a_backbone_narrower_than_the_latent_is_refused():
    from histosynth.diffusion.denoiser import build_denoiser

    with pytest.raises(ValueError, match="latent channels"):
        build_denoiser("cpu-tiny", "map", 3, 32, 192, 4)  # 96 channels cannot carry 192
    build_denoiser("test", "map", 3, 32, 48, 4)  # the mechanics-only backbone is exempt


def test_map_variant_ignores_crops(make_denoiser, make_inputs):
    den = make_denoiser("map")
    maps, crops = make_inputs()
    with_crops = _conds(den, maps, make_crop_batch(crops, maps, den.canvas))
    without = _conds(den, maps, None)
    torch.testing.assert_close(with_crops.spatial, without.spatial)
    assert with_crops.mask.shape == (3, 1)


def test_spatial_variant_pastes_crops_in_place(make_denoiser, make_inputs):
    den = make_denoiser("map+crops-spatial")
    maps, crops = make_inputs()
    crops[0] = [(1, crops[0][1][1], (2, 3))]
    cb = make_crop_batch(crops, maps, den.canvas)
    rgb, cls = paste_crops(cb, (32, 32), None)
    h, w = cb.sizes[0, 0].tolist()
    torch.testing.assert_close(rgb[0, :, 2 : 2 + h, 3 : 3 + w], cb.pixels[0, 0, :, :h, :w])
    assert (cls[0, 2 : 2 + h, 3 : 3 + w] == 1).all() and (cls[0, 20:] == -1).all()
    full = _conds(den, maps, cb)
    no_crops = _conds(den, maps, cb, drop_crops=torch.tensor([True, False, False]))
    assert not torch.allclose(full.spatial[0], no_crops.spatial[0])
    torch.testing.assert_close(full.spatial[1:], no_crops.spatial[1:])


def test_token_variant_is_position_free_and_drops_to_the_null_token(make_denoiser, make_inputs):
    den = make_denoiser("map+crops-tokens")
    maps, crops = make_inputs()
    cb = make_crop_batch(crops, maps, den.canvas)
    c = _conds(den, maps, cb)
    assert c.mask.shape == (3, 1 + 3 * 4)  # null + 3 crops x 2x2 tokens
    moved = make_crop_batch([[(k, px, (0, 0)) for k, px in s] for s in crops], maps.flip(-1), den.canvas)
    torch.testing.assert_close(_conds(den, maps, moved).tokens, c.tokens)  # positions and maps unused
    dropped = _conds(den, maps, cb, drop_crops=torch.tensor([False, True, False]))
    assert dropped.mask[1].sum() == 1 and dropped.mask[0].all()
    none = _conds(den, maps, None)
    torch.testing.assert_close(none.tokens[:, 0], c.tokens[:, 0])  # the same learned null token
    alone = _conds(den, maps[2:], cb.index([2]))  # a sample's tokens do not depend on its batch
    torch.testing.assert_close(alone.tokens[0], c.tokens[2], atol=1e-5, rtol=0)
