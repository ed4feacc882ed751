"""Schedule and loss: the same ᾱ as diffusers' schedulers, targets and Min-SNR weights."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from histosynth.diffusion.loss import DiffusionLoss
from histosynth.diffusion.schedule import NoiseSchedule


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_matches_diffusers(kind):
    s = NoiseSchedule(kind)
    for cls in (DDPMScheduler, DDIMScheduler):
        ref = cls(**s.scheduler_config()).alphas_cumprod.double()
        torch.testing.assert_close(s.alphas_cumprod(), ref, rtol=1e-5, atol=1e-7)
    if kind == "linear":  # the paper's end points, linear in sqrt(beta) as in latent diffusion
        b = s.betas()
        assert b[0] == pytest.approx(0.0015) and b[-1] == pytest.approx(0.0205)


def test_targets_and_noising():
    x0, eps = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    t = torch.tensor([0, 10, 500, 999])
    for pred in ("epsilon", "v_prediction"):
        s = NoiseSchedule(prediction=pred)
        xt = s.add_noise(x0, eps, t)
        abar = s.alphas_cumprod()[t].float().view(-1, 1, 1, 1)
        torch.testing.assert_close(xt, abar.sqrt() * x0 + (1 - abar).sqrt() * eps)
        target = s.target(x0, eps, t)
        want = eps if pred == "epsilon" else abar.sqrt() * eps - (1 - abar).sqrt() * x0
        torch.testing.assert_close(target, want)


def test_min_snr_weights():
    t = torch.tensor([0, 999])
    eps_w = DiffusionLoss(NoiseSchedule(), min_snr_gamma=5.0).weight(t)
    snr = NoiseSchedule().snr(t)
    torch.testing.assert_close(eps_w, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert eps_w[0] < 1 and eps_w[1] == pytest.approx(1.0)  # clipped at low noise only
    v_w = DiffusionLoss(NoiseSchedule(prediction="v_prediction"), min_snr_gamma=5.0).weight(t)
    torch.testing.assert_close(v_w, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    assert (DiffusionLoss(NoiseSchedule()).weight(t) == 1).all()


def test_loss_is_zero_for_a_perfect_model_and_l1_or_l2():
    s = NoiseSchedule()
    x0 = torch.randn(2, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    t, noise = torch.tensor([3, 700]), torch.randn(2, 3, 4, 4, generator=g)
    perfect = DiffusionLoss(s)(lambda x, tt: noise, x0, t=t, noise=noise)
    assert perfect.loss.shape == (2,) and float(perfect.loss.abs().max()) == 0.0
    l1 = DiffusionLoss(s, "l1")(lambda x, tt: noise + 0.5, x0, t=t, noise=noise).raw
    l2 = DiffusionLoss(s, "l2")(lambda x, tt: noise + 0.5, x0, t=t, noise=noise).raw
    torch.testing.assert_close(l1, torch.full((2,), 0.5))
    torch.testing.assert_close(l2, torch.full((2,), 0.25))
    drawn = DiffusionLoss(s)(lambda x, tt: x, x0, generator=torch.Generator().manual_seed(1))
    assert drawn.t.shape == (2,) and 0 <= int(drawn.t.min()) and int(drawn.t.max()) < 1000


def test_input_perturbation_moves_the_input_not_the_target():
    """DDPM-IP (Ning et al. 2023): x_t is made with ε + γ ξ, the target is ε's."""
    s = NoiseSchedule(prediction="v_prediction")
    x0 = torch.randn(2, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    t, noise, xi = (
        torch.tensor([10, 600]),
        torch.randn(2, 3, 4, 4, generator=g),
        torch.randn(2, 3, 4, 4, generator=g),
    )
    seen = {}

    def model(x, tt):
        seen["x"] = x
        return s.target(x0, noise, tt)  # the unperturbed target: zero loss

    terms = DiffusionLoss(s, "l2", input_perturbation=0.1)(model, x0, t=t, noise=noise, perturbation=xi)
    assert float(terms.raw.abs().max()) == 0.0
    torch.testing.assert_close(seen["x"], s.add_noise(x0, noise + 0.1 * xi, t))
    off = DiffusionLoss(s, "l2")(model, x0, t=t, noise=noise, perturbation=xi)  # ξ ignored when off
    torch.testing.assert_close(seen["x"], s.add_noise(x0, noise, t))
    assert float(off.raw.abs().max()) == 0.0


def test_the_perturbation_is_drawn_last_so_other_draws_do_not_change():
    from histosynth.train.draws import draw, sample_generators

    plain = draw(sample_generators(3, 5, [0, 1]), (2, 4, 4), 1000, 0.1, 0.1, "cpu")
    ip = draw(sample_generators(3, 5, [0, 1]), (2, 4, 4), 1000, 0.1, 0.1, "cpu", perturb=True)
    assert plain.perturbation is None and ip.perturbation.shape == (2, 2, 4, 4)
    for name in ("t", "noise", "drop_map", "drop_crops"):
        torch.testing.assert_close(getattr(plain, name), getattr(ip, name))
    assert not torch.equal(ip.perturbation, ip.noise)
