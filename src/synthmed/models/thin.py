"""Convolutions at the image end of a network (1-4 image channels), made fast on the CPU.

oneDNN, PyTorch's CPU convolution library, computes a transposed convolution with 1-4 output
channels about 4x slower than ATen's own direct kernel (``slow_conv_transpose2d``: column
matrix product + col2im). Two layers of every DCGAN hit that case at each training step: the
generator's last layer (64 -> 1 channel, forward) and the input gradient of the discriminator's
first layer (1 -> 64 channels, whose input gradient *is* such a transposed convolution, needed in
the generator step). At 64 px, batch 64, one thread: 23 vs 6 ms each, ~35 ms of a ~1.5 s step
(docs/benchmarks.md, "What did not help and what did"). Everything else stays with oneDNN, which
is fast for these layers' other directions (the first layer's forward and weight gradient take
~2 ms each).

The classes are ``nn.Conv2d`` / ``nn.ConvTranspose2d`` with the same parameters and state-dict
keys (checkpoints are unchanged), and take the special path only where it pays and is defined:
float32 on the CPU, without autocast, groups/dilation 1, no bias. Elsewhere (GPUs, bf16) they are
the plain modules. The result is the same convolution up to float rounding (a different order of
summation), and deterministic run to run like every CPU kernel here.
"""

from __future__ import annotations

import torch
from torch import nn

#: Image-end layers with at most this many image channels use the classes below.
THIN_CHANNELS = 4


def _thin_ok(x: torch.Tensor, module: nn.Module) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and module.bias is None
            and module.groups == 1 and tuple(module.dilation) == (1, 1)
            and not torch.is_autocast_enabled("cpu"))


def _transposed(x: torch.Tensor, weight: torch.Tensor, stride, padding, output_padding=(0, 0)
                ) -> torch.Tensor:
    """ATen's direct transposed convolution (differentiable; its backward uses oneDNN's fast
    directions)."""
    k = tuple(weight.shape[-2:])
    return torch.ops.aten.slow_conv_transpose2d(x, weight, k, None, stride, padding,
                                                output_padding, (1, 1))


class _ConvThinInputGrad(torch.autograd.Function):
    """conv2d by oneDNN; its input gradient by the direct transposed kernel."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return nn.functional.conv2d(x, weight, None, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            # output_padding recovers input sizes that the strided convolution rounded down
            out = [(o - 1) * s - 2 * p + k for o, s, p, k in
                   zip(grad.shape[-2:], ctx.stride, ctx.padding, weight.shape[-2:], strict=True)]
            extra = tuple(i - o for i, o in zip(x.shape[-2:], out, strict=True))
            gx = _transposed(grad, weight, ctx.stride, ctx.padding, extra)
        if ctx.needs_input_grad[1]:
            gw = torch.ops.aten.convolution_backward(
                grad, x, weight, None, ctx.stride, ctx.padding, (1, 1), False, (0, 0), 1,
                (False, True, False))[1]
        return gx, gw, None, None


class ThinInputConv2d(nn.Conv2d):
    """``nn.Conv2d`` for few input channels: on the CPU its input gradient (the generator
    step's path through D) skips oneDNN's slow thin transposed convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) -> (N, C_out, H', W'), as nn.Conv2d."""
        if (self.padding_mode != "zeros" or not _thin_ok(x, self)
                or not (torch.is_grad_enabled() and x.requires_grad)):
            return super().forward(x)
        return _ConvThinInputGrad.apply(x, self.weight, tuple(self.stride), tuple(self.padding))


class ThinOutputConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` for few output channels (a generator's image layer): on the CPU
    its forward is ATen's direct kernel instead of oneDNN's slow one."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        """x (N, C_in, H, W) -> (N, C_out, H', W'), as nn.ConvTranspose2d."""
        if output_size is not None or not _thin_ok(x, self):
            return super().forward(x, output_size)
        return _transposed(x, self.weight, tuple(self.stride), tuple(self.padding),
                           tuple(self.output_padding))
