"""DPM-Solver++(2M) (synthmed.models.dpm_solver): the reference implementation's numbers on a
fixed toy model, round trips of exact denoisers, convergence to the ODE's solution, and
batch-independent sampling through the U-Net (CPU, well under a second each)."""

from __future__ import annotations

import math

import pytest
import torch

from synthmed.models.ddpm import Diffusion, ddim_sample, sample, seeded_noise
from synthmed.models.dpm_solver import DPMSolverPP, dpm_timesteps


def toy(x: torch.Tensor, t: int) -> torch.Tensor:
    """A fixed smooth 'network' with no weights (the reference numbers depend on nothing else)."""
    return x * (0.3 + 0.7 * t / 1000.0) + 0.1 * torch.sin(3 * x + t / 100.0)


# diffusers 0.42.1 DPMSolverMultistepScheduler(num_train_timesteps=1000, trained_betas=MONAI's
# betas of the schedule, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
# timestep_spacing="linspace", final_sigmas_type="zero", lower_order_final=True,
# lambda_min_clipped=-5.1, thresholding=CLIP, sample_max_value=1.0), stepped with toy() from
# x = linspace(-2.5, 2.5, 8).reshape(1, 1, 2, 4) (float32); outputs rounded to 6 decimals.
REFERENCE = {
    ("cosine", "epsilon", 20, True):
        [-1.0, -1.0, -1.0, -0.533139, 0.560314, 1.0, 1.0, 1.0],
    ("linear", "v", 20, True):
        [-1.0, -0.772304, -0.481838, -0.191129, 0.12764, 0.486151, 0.870245, 1.0],
    ("cosine", "epsilon", 10, False):
        [-4.425582, 0.338164, -2.343651, -1.579652, 2.874362, -0.21937, 1.245653, 5.303032],
    ("linear", "epsilon", 7, True):
        [-1.0, -1.0, -1.0, -0.664444, 0.728479, 1.0, 1.0, 1.0],
}


def _alphas_cumprod(schedule: str, prediction: str = "epsilon", T: int = 1000) -> torch.Tensor:
    return Diffusion(num_train_timesteps=T, schedule=schedule,
                     prediction=prediction).train_scheduler().alphas_cumprod


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_matches_the_reference_implementation_numbers(key):
    schedule, prediction, steps, clip = key
    x = torch.linspace(-2.5, 2.5, 8).reshape(1, 1, 2, 4)
    out = DPMSolverPP(_alphas_cumprod(schedule, prediction), steps, prediction=prediction,
                      clip=clip).sample(toy, x)
    ref = torch.tensor(REFERENCE[key])
    assert torch.allclose(out.flatten(), ref, rtol=1e-5, atol=2e-6), (out.flatten(), ref)


@pytest.mark.parametrize("schedule,prediction,steps", [("cosine", "epsilon", 20),
                                                       ("cosine", "v", 7), ("linear", "v", 5)])
def test_matches_diffusers_when_installed(schedule, prediction, steps):
    """The same check live against diffusers (a dev extra), on random inputs and at both
    clip settings."""
    diffusers = pytest.importorskip("diffusers")
    ac_sched = Diffusion(num_train_timesteps=1000, schedule=schedule,
                         prediction=prediction).train_scheduler()
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3)) * 0.5
    for clip in (True, False):
        ref = diffusers.DPMSolverMultistepScheduler(
            num_train_timesteps=1000, trained_betas=ac_sched.betas.numpy(),
            algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
            prediction_type={"epsilon": "epsilon", "v": "v_prediction"}[prediction],
            thresholding=clip, sample_max_value=1.0, timestep_spacing="linspace",
            final_sigmas_type="zero", lower_order_final=True, lambda_min_clipped=-5.1)
        ref.set_timesteps(steps)
        xr = x.clone()
        for t in ref.timesteps:
            xr = ref.step(toy(xr, int(t)), t, xr).prev_sample
        solver = DPMSolverPP(ac_sched.alphas_cumprod, steps, prediction=prediction, clip=clip)
        assert solver.timesteps.tolist() == ref.timesteps.tolist()
        assert torch.allclose(solver.sample(toy, x.clone()), xr, rtol=1e-4, atol=1e-5)


def _oracle(x0: torch.Tensor, ac: torch.Tensor, prediction: str):
    """The exact network for data that is the single image ``x0``: from x_t it recovers the
    noise (or v) that produced it (float64: at t = T - 1 alpha is ~1e-2)."""
    ac = ac.double()

    def model(x: torch.Tensor, t: int) -> torch.Tensor:
        a, s = float(ac[t].sqrt()), float((1 - ac[t]).sqrt())
        eps = (x - a * x0) / s
        return eps if prediction == "epsilon" else a * eps - s * x0
    return model


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("steps", [1, 2, 20, 999])
def test_round_trip_exact_denoiser_returns_its_input(prediction, steps):
    """A noise-free schedule for the solver: with the exact denoiser of one image every
    clean-image prediction is that image, so any number of steps returns it exactly."""
    ac = _alphas_cumprod("cosine", prediction)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64) * 1.8 - 0.9
    noise = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    out = DPMSolverPP(ac, steps, prediction=prediction).sample(_oracle(x0, ac, prediction), noise)
    assert torch.allclose(out, x0, atol=1e-8)


def test_converges_to_the_ode_solution_faster_than_ddim():
    """Gaussian data N(0, s^2): the probability-flow ODE keeps x_t / sqrt(a_t^2 s^2 + s_t^2)
    constant, so its exact end point is known. DPM-Solver++ at 20 evaluations lands far closer
    than its own first-order form (DDIM), closer even than DDIM at 160."""
    s2 = 0.3 ** 2
    ac = _alphas_cumprod("linear")

    def model(x, t):  # the exact noise prediction for N(0, s2) data
        a2 = float(ac[t].double())
        return math.sqrt(1 - a2) * x / (a2 * s2 + 1 - a2)

    x_T = torch.randn(4096, generator=torch.Generator().manual_seed(0))

    def err(steps, order):
        """Distance to the exact trajectory's last clean-image prediction (the last step jumps
        from the last timestep to sigma = 0 with it, as in the reference implementation)."""
        solver = DPMSolverPP(ac, steps, order=order, clip=False)
        first, last = (float(ac[int(solver.timesteps[i])]) for i in (0, -1))
        x_last = math.sqrt(last * s2 + 1 - last) * x_T / math.sqrt(first * s2 + 1 - first)
        exact = math.sqrt(last) * s2 / (last * s2 + 1 - last) * x_last
        return float((solver.sample(model, x_T) - exact).abs().max())

    # measured: dpm-solver++ 20: 0.005; ddim 20: 0.09, ddim 160: 0.025 (max over 4096 draws)
    assert err(20, 2) < 0.01 and err(20, 2) < err(20, 1) / 5
    assert err(20, 2) < err(160, 1)  # 20 evaluations beat 160 first-order (DDIM) steps


def test_timesteps_follow_linspace_and_drop_duplicates():
    assert dpm_timesteps(1000, 4).tolist() == [999, 749, 500, 250]
    cosine = _alphas_cumprod("cosine")  # starts where lambda >= -5.1, not at alpha = 5e-5
    assert dpm_timesteps(1000, 20, cosine)[:2].tolist() == [995, 945]
    assert dpm_timesteps(1000, 4, _alphas_cumprod("linear")).tolist() == [999, 749, 500, 250]
    assert dpm_timesteps(1000, 1).tolist() == [999]
    ts = dpm_timesteps(10, 10)
    assert len(ts) == len(set(ts.tolist())) and (ts[:-1] > ts[1:]).all()
    with pytest.raises(ValueError):
        dpm_timesteps(10, 11)


def _unet():
    from synthmed.models.ddpm import build_unet

    torch.manual_seed(0)
    net = build_unet(in_channels=1, out_channels=1, channels=(8, 16), num_classes=2).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.1)
    return net


def test_unet_sampling_is_batch_independent_and_in_range():
    net, d = _unet(), Diffusion(num_train_timesteps=100)
    seeds, y = list(range(40, 56)), torch.arange(16) % 2
    many = sample(net, seeded_noise(seeds, (1, 16, 16)), y, diffusion=d, steps=5, guidance=2.0,
                  num_classes=2)
    one = sample(net, seeded_noise([seeds[5]], (1, 16, 16)), y[5:6], diffusion=d, steps=5,
                 guidance=2.0, num_classes=2)
    # float rounding differs per batch size (oneDNN kernels) and the clipping re-projection
    # can amplify it: 5e-4 on the [-1, 1] scale is 1/16 of a grey level
    assert torch.allclose(one[0], many[5], atol=5e-4)
    assert many.abs().max() <= 1 and many.std() > 0.05
    ddim = sample(net, seeded_noise(seeds, (1, 16, 16)), y, diffusion=d, steps=5, guidance=2.0,
                  num_classes=2, sampler="ddim")
    assert torch.equal(ddim, ddim_sample(net, seeded_noise(seeds, (1, 16, 16)), y, diffusion=d,
                                         steps=5, guidance=2.0, num_classes=2))
    assert not torch.allclose(ddim, many, atol=1e-3)
    with pytest.raises(ValueError, match="sampler"):
        sample(net, seeded_noise(seeds, (1, 16, 16)), y, diffusion=d, steps=5, guidance=2.0,
               num_classes=2, sampler="euler")


def test_keep_noise_changes_only_clipped_steps():
    """``keep_noise`` rebuilds the state only where the clean image was clipped: identical
    results when nothing is clipped, different ones when the prediction saturates."""
    ac = _alphas_cumprod("linear")
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def mild(x, t):  # exact denoiser of N(0, 0.1^2) data: clean images stay inside [-1, 1]
        a2 = float(ac[t].double())
        return math.sqrt(1 - a2) * x / (a2 * 0.01 + 1 - a2)

    def wild(x, t):
        return torch.sin(3 * x) + 0.5 * x

    for model, same in ((mild, True), (wild, False)):
        a = DPMSolverPP(ac, 10, keep_noise=True).sample(model, x.clone())
        b = DPMSolverPP(ac, 10, keep_noise=False).sample(model, x.clone())
        assert torch.allclose(a, b, atol=1e-10) == same
