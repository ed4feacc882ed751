"""Pathology foundation models and general baselines, built from local safetensors weights.

Each entry records the architecture exactly as its authors publish it (timm model name and
keyword arguments, or the transformers / CONCH model), its input size and normalisation and how
its features are pooled. Builders import their library only when called, after the weights have
been found (see :mod:`histosynth.embed.weights`), so a missing file fails fast.

========================  ========  ======  =====================================================
 name                      backend   dim     features
========================  ========  ======  =====================================================
 uni                       timm      1024    ViT-L/16 class token (MahmoodLab/UNI)
 uni2-h                    timm      1536    ViT-H/14, 8 registers, class token (MahmoodLab/UNI2-h)
 virchow2                  timm      2560    ViT-H/14, class token ‖ mean patch token (paige-ai/Virchow2)
 h-optimus-0, h-optimus-1  timm      1536    ViT-g/14, 4 registers, class token (bioptimus)
 phikon-v2                 hf        1024    DINOv2 ViT-L/16 class token (owkin/phikon-v2)
 conch                     conch     512     CoCa ViT-B/16 image embedding, 448 px (MahmoodLab/conch)
 dinov2-vits14             timm      384     general baseline, DINOv2 ViT-S/14 class token
 resnet50                  timm      2048    general baseline, ImageNet ResNet-50 average pool
========================  ========  ======  =====================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from histosynth.embed.spec import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, EncoderSpec

if TYPE_CHECKING:
    from histosynth.embed.base import PatchEncoder
    from histosynth.embed.weights import ResolvedWeights

__all__ = ["FOUNDATION_SPECS", "build_conch", "build_timm", "build_transformers", "timm_module"]

HOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
HOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
_SWIGLU = {"mlp_layer": "timm.layers:SwiGLUPacked", "act_layer": "torch.nn:SiLU"}


def _specs() -> list[EncoderSpec]:
    """The foundation-model entries of the encoder registry."""
    specs: list[EncoderSpec] = []
    register = specs.append

    def timm_spec(name: str, dim: int, arch: str, kwargs: dict[str, Any], hub: str, help: str,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pool: str = "head", size: int = 224) -> EncoderSpec:  # fmt: skip
        return EncoderSpec(
            name, dim, size, "histosynth.embed.foundation:build_timm", backend="timm",
            source=f"huggingface.co/{hub}", hub_repo=hub, help=help,
            params={"arch": arch, "kwargs": kwargs, "mean": mean, "std": std, "pool": pool},
        )  # fmt: skip

    vit = {"img_size": 224, "init_values": 1e-5, "num_classes": 0}
    register(timm_spec("uni", 1024, "vit_large_patch16_224",
                       {**vit, "patch_size": 16, "dynamic_img_size": True},
                       "MahmoodLab/UNI", "UNI (ViT-L/16), pathology foundation model"))  # fmt: skip
    register(timm_spec("uni2-h", 1536, "vit_giant_patch14_224",
                       {**vit, "patch_size": 14, "depth": 24, "num_heads": 24, "embed_dim": 1536,
                        "mlp_ratio": 2.66667 * 2, "no_embed_class": True, "reg_tokens": 8,
                        "dynamic_img_size": True, **_SWIGLU},
                       "MahmoodLab/UNI2-h", "UNI2-h (ViT-H/14), pathology foundation model"))  # fmt: skip
    register(timm_spec("virchow2", 2560, "vit_huge_patch14_224",
                       {**vit, "mlp_ratio": 5.3375, "reg_tokens": 4, "global_pool": "",
                        "dynamic_img_size": True, **_SWIGLU},
                       "paige-ai/Virchow2", "Virchow2 (ViT-H/14), class token ‖ mean patch token",
                       pool="cls_mean"))  # fmt: skip
    for n in ("0", "1"):
        register(timm_spec(f"h-optimus-{n}", 1536, "vit_giant_patch14_reg4_dinov2",
                           {**vit, "dynamic_img_size": False}, f"bioptimus/H-optimus-{n}",
                           f"H-optimus-{n} (ViT-g/14), pathology foundation model",
                           mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD))  # fmt: skip
    register(timm_spec("dinov2-vits14", 384, "vit_small_patch14_dinov2", {"img_size": 224, "num_classes": 0},
                       "timm/vit_small_patch14_dinov2.lvd142m", "DINOv2 ViT-S/14 (general baseline)"))  # fmt: skip
    register(timm_spec("resnet50", 2048, "resnet50", {"num_classes": 0}, "timm/resnet50.a1_in1k",
                       "ImageNet ResNet-50 (general baseline)"))  # fmt: skip
    register(EncoderSpec(
        "phikon-v2", 1024, 224, "histosynth.embed.foundation:build_transformers", backend="transformers",
        source="huggingface.co/owkin/phikon-v2", hub_repo="owkin/phikon-v2",
        params={"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        help="Phikon-v2 (DINOv2 ViT-L/16), pathology foundation model (transformers)",
    ))  # fmt: skip
    register(EncoderSpec(
        "conch", 512, 448, "histosynth.embed.foundation:build_conch", backend="conch",
        source="huggingface.co/MahmoodLab/conch (converted to safetensors)", hub_repo="MahmoodLab/conch",
        params={"mean": CLIP_MEAN, "std": CLIP_STD, "config": "conch_ViT-B-16"},
        help="CONCH (CoCa ViT-B/16) image encoder, vision-language pathology model",
    ))  # fmt: skip
    return specs


FOUNDATION_SPECS = _specs()


# ---------------------------------------------------------------------------------- helpers
def _resolve_obj(value: Any) -> Any:
    """``"module:attr"`` strings in kwargs become the objects they name (layers, activations)."""
    if isinstance(value, str) and ":" in value and not value.startswith(("/", ".")):
        import importlib

        module, _, attr = value.partition(":")
        return getattr(importlib.import_module(module), attr)
    return value


def timm_module(spec: EncoderSpec, device: str | None = None) -> Any:
    """The timm network of ``spec`` with random weights (``device="meta"`` allocates nothing)."""
    import timm
    import torch

    kwargs = {k: _resolve_obj(v) for k, v in spec.params["kwargs"].items()}
    with torch.device(device or "cpu"):
        return timm.create_model(spec.params["arch"], pretrained=False, **kwargs)


def _strip_prefix(
    state: dict[str, Any], prefixes: tuple[str, ...] = ("module.", "model.", "backbone.")
) -> dict:
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_into(
    module: Any, state: dict[str, Any], path: Any, spec_name: str, ignore: tuple[str, ...] = ()
) -> None:
    """Load a state dict strictly (classifier heads excepted); a mismatch names the file."""
    from histosynth.embed.weights import WeightsError

    result = module.load_state_dict(state, strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith(ignore)]
    if result.missing_keys or unexpected:
        some = (result.missing_keys + unexpected)[:3]
        raise WeightsError(
            f"{path}: these weights do not fit encoder {spec_name!r} "
            f"({len(result.missing_keys)} missing, {len(unexpected)} unexpected keys, e.g. {some})"
        )


def _identity(spec: EncoderSpec, weights: ResolvedWeights) -> tuple[str, str]:
    from histosynth.embed.weights import weights_checksum

    digest = weights_checksum(weights)
    return f"{spec.name}:sha256-{digest[:16]}", digest


def _finish(enc: PatchEncoder, weights: ResolvedWeights, digest: str) -> PatchEncoder:
    enc.weights_sha256, enc.weights_path = digest, str(weights.path)
    return enc


# ---------------------------------------------------------------------------------- builders
def _cls_mean(module: Any, x: Any) -> Any:
    import torch

    tokens = module.forward_features(x)
    return torch.cat([tokens[:, 0], tokens[:, module.num_prefix_tokens :].mean(1)], dim=-1)


def build_timm(spec: EncoderSpec, weights: ResolvedWeights, device: str = "cpu",
               precision: str = "auto") -> PatchEncoder:  # fmt: skip
    """A timm model with weights from a local safetensors file."""
    import sys

    from histosynth.embed.base import TorchEncoder
    from histosynth.embed.weights import load_safetensors

    identity, digest = _identity(spec, weights)
    module = timm_module(spec)
    state = _strip_prefix(load_safetensors(weights.path))
    # timm's own filter converts original-format checkpoints and resamples position embeddings.
    filter_fn = getattr(sys.modules[type(module).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        state = filter_fn(state, module)
    load_into(module, state, weights.path, spec.name, ignore=("head.", "fc.", "classifier."))
    forward = _cls_mean if spec.params.get("pool") == "cls_mean" else None
    enc = TorchEncoder(spec.name, module, spec.dim, identity, spec.input_size, spec.params["mean"],
                       spec.params["std"], device=device, precision=precision, forward=forward)  # fmt: skip
    return _finish(enc, weights, digest)


def _hf_cls(module: Any, x: Any) -> Any:
    return module(pixel_values=x).last_hidden_state[:, 0]


def build_transformers(spec: EncoderSpec, weights: ResolvedWeights, device: str = "cpu",
                       precision: str = "auto") -> PatchEncoder:  # fmt: skip
    """A transformers vision model from a local folder (config.json + model.safetensors)."""
    from transformers import AutoModel

    from histosynth.embed.base import TorchEncoder
    from histosynth.embed.weights import WeightsError

    folder = weights.path if weights.path.is_dir() else weights.path.parent
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise WeightsError(
            f"{folder}: encoder {spec.name!r} needs a folder with config.json and model.safetensors"
        )
    identity, digest = _identity(spec, weights)
    module = AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    enc = TorchEncoder(spec.name, module, spec.dim, identity, spec.input_size, spec.params["mean"],
                       spec.params["std"], device=device, precision=precision, forward=_hf_cls)  # fmt: skip
    return _finish(enc, weights, digest)


def _conch_image(module: Any, x: Any) -> Any:
    return module.encode_image(x, proj_contrast=False, normalize=False)


def build_conch(spec: EncoderSpec, weights: ResolvedWeights, device: str = "cpu",
                precision: str = "auto") -> PatchEncoder:  # fmt: skip
    """CONCH's CoCa model from the ``conch`` package's config, weights from safetensors."""
    import json
    from importlib import resources

    from conch.open_clip_custom.coca_model import CoCa

    from histosynth.embed.base import TorchEncoder
    from histosynth.embed.weights import load_safetensors

    cfg_file = resources.files("conch.open_clip_custom") / "model_configs" / f"{spec.params['config']}.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg.pop("custom_text", None)
    identity, digest = _identity(spec, weights)
    module = CoCa(**cfg)
    load_into(module, _strip_prefix(load_safetensors(weights.path)), weights.path, spec.name)
    enc = TorchEncoder(spec.name, module, spec.dim, identity, spec.input_size, spec.params["mean"],
                       spec.params["std"], device=device, precision=precision, forward=_conch_image)  # fmt: skip
    return _finish(enc, weights, digest)
