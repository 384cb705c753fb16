"""synthmed.device: one meaning of ``auto`` and of every device name, for every command."""

from __future__ import annotations

import inspect

import pytest
import torch

from synthmed.device import amp_dtype, grad_scaler, resolve_device, synchronize
from synthmed.errors import ConfigError

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@NO_GPU
def test_auto_is_the_cpu_on_a_machine_without_a_gpu():
    mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    assert resolve_device("auto") == torch.device("mps" if mps else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@NO_GPU
@pytest.mark.parametrize("name,needle", [("cuda", "CUDA is not available"),
                                         ("cuda:1", "CUDA is not available"),
                                         ("tpu9", "unknown device"), ("meta", "unsupported")])
def test_a_missing_or_unknown_device_is_one_line_naming_the_key(name, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        resolve_device(name, key="train.device")
    assert str(e.value).startswith(f"train.device {name}") or \
        str(e.value).startswith(f"train.device {name!r}")
    assert "\n" not in str(e.value)


def test_cpu_precision_is_bf16_without_a_scaler():
    cpu = torch.device("cpu")
    assert amp_dtype(cpu) == torch.bfloat16
    assert grad_scaler(cpu, amp=True) is None and grad_scaler(cpu, amp=False) is None
    synchronize(cpu)  # a no-op on the CPU


def test_every_command_defaults_to_auto():
    """generate, evaluate, utility and synthmed run all take ``auto`` unless told otherwise."""
    from synthmed.cli.evaluate import evaluate_cmd
    from synthmed.cli.generate import generate_cmd
    from synthmed.config import ExperimentConfig
    from synthmed.metrics.evaluate import evaluate
    from synthmed.sampling.pairs import write_pairs
    from synthmed.sampling.sampler import load_generator
    from synthmed.sampling.writer import write_synthetic

    cfg = ExperimentConfig()
    assert (cfg.train.device, cfg.utility.device, cfg.pipeline.device) == ("auto",) * 3
    for fn in (evaluate, write_pairs, load_generator, write_synthetic):
        assert inspect.signature(fn).parameters["device"].default == "auto", fn.__name__
    for cmd in (generate_cmd, evaluate_cmd):
        assert inspect.signature(cmd).parameters["device"].default.default == "auto"


def test_freed_memory_is_retained_unless_the_user_set_malloc_variables(monkeypatch):
    import sys

    import synthmed.device as device

    monkeypatch.setattr(device, "_RETAINED", False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert device.retain_freed_memory() is False, "the user's own setting wins"
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    expected = sys.platform.startswith("linux")  # glibc here; a no-op elsewhere
    assert device.retain_freed_memory() is expected
