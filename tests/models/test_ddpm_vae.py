"""Diffusion and VAE networks: shapes, the scheduler round trip, classifier-free guidance and
batch-independent sampling (tiny networks, CPU, well under a second each)."""

from __future__ import annotations

import pytest
import torch

from synthmed.models.ddpm import (
    Diffusion,
    build_unet,
    ddim_sample,
    diffusion_loss,
    guided_prediction,
    min_snr_weight,
    seeded_noise,
)
from synthmed.models.vae import ConditionalVAE, vae_loss

TINY = (8, 16)


def _unet(num_classes=2, in_channels=1, extra=0):
    """A tiny U-Net with random weights everywhere: MONAI zero-initializes the output (and
    residual) convolutions, which would make every prediction 0 and these tests vacuous."""
    torch.manual_seed(0)
    net = build_unet(in_channels=in_channels + extra, out_channels=in_channels, channels=TINY,
                     num_classes=num_classes).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.1)
    return net


@pytest.mark.parametrize("num_classes", [0, 3])
@pytest.mark.parametrize("in_channels,extra,size", [(1, 0, 32), (3, 0, 16), (1, 1, 32)])
def test_unet_shapes(num_classes, in_channels, extra, size):
    net = _unet(num_classes, in_channels, extra)
    x = torch.randn(2, in_channels + extra, size, size)
    y = torch.tensor([0, num_classes]) if num_classes else None  # index num_classes = no class
    out = net(x, torch.tensor([0, 999]), class_labels=y)
    assert out.shape == (2, in_channels, size, size)


@pytest.mark.parametrize("num_classes", [0, 2])
def test_vae_shapes_and_loss(num_classes):
    torch.manual_seed(0)
    vae = ConditionalVAE(in_channels=1, image_size=32, latent_size=6, channels=TINY,
                         num_classes=num_classes)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 1]) if num_classes else None
    recon, mu, logvar = vae(x, y)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (3, 6)
    assert recon.abs().max() <= 1
    rec, kl = vae_loss(recon, x, mu, logvar)
    assert rec > 0 and kl >= 0
    assert vae.eval().decode(torch.randn(5, 6), torch.zeros(5, dtype=torch.long)
                             if num_classes else None).shape == (5, 1, 32, 32)


def test_conditional_vae_decoder_uses_the_class():
    torch.manual_seed(0)
    vae = ConditionalVAE(in_channels=1, image_size=32, latent_size=6, channels=TINY,
                         num_classes=2).eval()
    z = torch.randn(1, 6)
    assert not torch.allclose(vae.decode(z, torch.tensor([0])), vae.decode(z, torch.tensor([1])))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_scheduler_round_trip_noise_then_denoise_at_t0_returns_the_input(schedule, prediction):
    d = Diffusion(num_train_timesteps=100, schedule=schedule, prediction=prediction)
    train = d.train_scheduler()
    x0 = torch.rand(2, 1, 8, 8) * 1.8 - 0.9
    noise = torch.randn_like(x0)
    t = torch.zeros(2, dtype=torch.long)
    xt = train.add_noise(original_samples=x0, noise=noise, timesteps=t)
    target = noise if prediction == "epsilon" else train.get_velocity(x0, noise, t)
    ddim = d.ddim(100)  # stride 1: the step from t = 0 is the last one
    prev, pred_x0 = ddim.step(target, 0, xt)
    assert torch.allclose(pred_x0, x0, atol=1e-4)
    assert torch.allclose(prev, x0, atol=1e-4)
    # mid-chain too: the perfect prediction recovers x0 from a very noisy sample
    t = torch.full((2,), 60, dtype=torch.long)
    xt = train.add_noise(original_samples=x0, noise=noise, timesteps=t)
    target = noise if prediction == "epsilon" else train.get_velocity(x0, noise, t)
    assert torch.allclose(ddim.step(target, 60, xt)[1], x0, atol=1e-4)


def test_bad_steps_are_refused():
    with pytest.raises(ValueError, match="steps"):
        Diffusion(num_train_timesteps=10).ddim(11)


def test_cfg_scale_0_is_unconditional_1_conditional_and_mixes_linearly():
    net = _unet(num_classes=2)
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([10, 500]), torch.tensor([0, 1])
    null = torch.full_like(y, 2)
    with torch.no_grad():
        cond = net(x, t, class_labels=y)
        uncond = net(x, t, class_labels=null)
        assert not torch.allclose(cond, uncond, atol=1e-4)
        g = lambda s: guided_prediction(net, x, t, y, guidance=s, num_classes=2)  # noqa: E731
        assert torch.allclose(g(0.0), uncond, atol=1e-5)
        assert torch.allclose(g(1.0), cond, atol=1e-5)
        assert torch.allclose(g(0.5), 0.5 * (cond + uncond), atol=1e-5)
        assert torch.allclose(g(2.5), uncond + 2.5 * (cond - uncond), atol=1e-4)


def test_label_dropout_uses_the_null_class():
    net = _unet(num_classes=2)
    seen = []
    net.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["class_labels"].clone()),
                                  with_kwargs=True)
    sched = Diffusion(num_train_timesteps=50).train_scheduler()
    x, y = torch.randn(64, 1, 16, 16), torch.zeros(64, dtype=torch.long)
    torch.manual_seed(0)
    diffusion_loss(net, x, y, scheduler=sched, num_classes=2, cond_drop=0.5)
    assert 10 < int((seen[-1] == 2).sum()) < 54 and set(seen[-1].tolist()) == {0, 2}
    diffusion_loss(net, x, y, scheduler=sched, num_classes=2, cond_drop=0.0)
    assert (seen[-1] == 0).all()


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_min_snr_weight_is_the_clipped_snr_in_the_targets_space(prediction):
    """Hang et al. 2023: x0-space weight min(SNR, gamma), i.e. min(SNR, gamma) / SNR for the
    noise MSE and min(SNR, gamma) / (SNR + 1) for the v MSE."""
    ac = Diffusion(prediction=prediction).train_scheduler().alphas_cumprod
    t = torch.arange(0, 1000, 37)
    w = min_snr_weight(ac, t, gamma=5.0, prediction=prediction)
    snr = (ac[t] / (1 - ac[t])).double()
    x0_space = snr.clamp(max=5.0)
    want = x0_space / snr if prediction == "epsilon" else x0_space / (snr + 1)
    assert torch.allclose(w.double(), want, rtol=1e-6)
    if prediction == "epsilon":  # noisy steps (SNR < gamma) keep weight 1, clean ones shrink
        assert torch.equal(w[snr < 5], torch.ones_like(w[snr < 5]))
        assert (w[snr > 5] < 1).all()
    else:
        assert w.max() <= 5 / 6 + 1e-6  # the v weight peaks at SNR = gamma


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_min_snr_loss_weights_each_sample_and_draws_the_same_noise(prediction):
    """The weighted loss is the mean of weight x per-image MSE over the same draws as the plain
    loss (so switching it on changes no random stream); a gamma above every SNR is the plain
    noise MSE."""
    net = _unet(num_classes=2)
    sched = Diffusion(num_train_timesteps=50, prediction=prediction).train_scheduler()
    x, y = torch.rand(6, 1, 16, 16) * 2 - 1, torch.tensor([0, 1] * 3)
    draws = []
    net.register_forward_pre_hook(lambda m, a, kw: draws.append(a[1].clone()), with_kwargs=True)
    with torch.no_grad():
        torch.manual_seed(3)
        plain = diffusion_loss(net, x, y, scheduler=sched, num_classes=2, cond_drop=0.1)
        torch.manual_seed(3)
        weighted = diffusion_loss(net, x, y, scheduler=sched, num_classes=2, cond_drop=0.1,
                                  min_snr_gamma=1.0)
        torch.manual_seed(3)
        huge = diffusion_loss(net, x, y, scheduler=sched, num_classes=2, cond_drop=0.1,
                              min_snr_gamma=1e30)
    assert torch.equal(draws[0], draws[1])
    assert not torch.allclose(plain, weighted)
    if prediction == "epsilon":
        assert torch.allclose(plain, huge, rtol=1e-6)
    else:  # v: min(SNR, inf) / (SNR + 1) = SNR / (SNR + 1), the x0 MSE's share
        assert huge < plain


def test_same_seed_same_image_at_batch_sizes_1_and_64():
    net = _unet(num_classes=2)
    d = Diffusion(num_train_timesteps=100)
    seeds = list(range(100, 164))
    y = torch.arange(64) % 2
    many = ddim_sample(net, seeded_noise(seeds, (1, 16, 16)), y, diffusion=d, steps=4,
                       guidance=2.0, num_classes=2)
    for i in (0, 37):
        one = ddim_sample(net, seeded_noise([seeds[i]], (1, 16, 16)), y[i:i + 1], diffusion=d,
                          steps=4, guidance=2.0, num_classes=2)
        # equal up to float rounding (oneDNN picks other conv kernels per batch size): 1e-4 on
        # the [-1, 1] scale is 1/80 of a grey level
        assert torch.allclose(one[0], many[i], atol=1e-4)
    assert not torch.allclose(many[0], many[2], atol=1e-2)  # different seeds, different images
    assert many.std() > 0.05
