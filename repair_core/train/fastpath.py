"""Step acceleration, in one place: torch.compile, CUDA-graph capture and fused optimizers.

Every switch falls back to eager when it cannot work here (no CUDA, no C compiler, a torch
without the API, a capture error) and records why: a fast path that fails must cost speed,
never a job. Callers read `.mode` and `.fallback_reason` and report them.

Only APIs present in torch 2.11 are used (the GPU machine runs 2.11, this one 2.14).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "EAGER",
    "CompiledCall",
    "CudaGraphStep",
    "FastSwitches",
    "compile_forward",
    "cuda_graph_unavailable",
    "make_sgd",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastSwitches:
    """The speed switches a step takes; the settings dataclasses carry the same names."""

    compile: bool = False  # torch.compile (inductor)
    cuda_graph: bool = False  # whole step as one CUDA graph (CUDA only)
    fused_optimizer: bool = False  # fused SGD kernel (CUDA only)


EAGER = FastSwitches()


class CompiledCall:
    """`fn` under torch.compile (inductor) when `enabled`, else `fn` itself.

    torch.compile is lazy: it compiles at the first call, so that is where it can fail.
    A failing first compiled call is retried eagerly and the wrapper stays eager from then
    on; a failure of a later call is the model's own and is raised. `mode` is passed to
    torch.compile (CUDA: "reduce-overhead" records CUDA graphs through inductor).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        enabled: bool,
        mode: str | None = None,
        what: str = "step",
    ) -> None:
        self._eager = fn
        self._call: Callable[..., Any] = fn
        self._checked = not enabled
        self.what = what
        self.mode = "eager"
        self.fallback_reason: str | None = None
        if not enabled:
            return
        if not hasattr(torch, "compile"):
            self._fall_back("this torch has no torch.compile")
            return
        try:
            self._call = torch.compile(fn, mode=mode)
            self.mode = "compile" if mode is None else f"compile:{mode}"
        except Exception as exc:  # any compiler set-up error means "run eager"
            self._fall_back(f"torch.compile failed: {type(exc).__name__}: {exc}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._checked:
            return self._call(*args, **kwargs)
        self._checked = True
        try:
            return self._call(*args, **kwargs)
        except Exception as exc:  # compile errors have no common base class
            self._fall_back(f"compiling failed: {type(exc).__name__}: {str(exc)[:300]}")
            return self._eager(*args, **kwargs)

    def report(self, name: str = "forward") -> dict[str, str]:
        """{name: mode} plus {name_fallback: reason} when it fell back."""
        out = {name: self.mode}
        if self.fallback_reason:
            out[f"{name}_fallback"] = self.fallback_reason
        return out

    def _fall_back(self, reason: str) -> None:
        self._call, self._checked = self._eager, True
        self.mode, self.fallback_reason = "eager", reason
        log.warning("fast path off for the %s, running eager: %s", self.what, reason)


class CudaGraphStep:
    """A whole training step (forward, backward, clip, optimizer step) replayed as one CUDA
    graph, with static input buffers; eager where that is not possible.

    `step(*inputs) -> outputs` must be free of host syncs and of shape changes. Each call
    copies the inputs into the static buffers and replays the graph; outputs are the static
    tensors the capture produced (clone them to keep them past the next call). Python-level
    constants read by `step` (learning rate, drop-path probability) are baked in at capture:
    call `invalidate()` when they change, and the next call captures again.
    """

    def __init__(
        self,
        step: Callable[..., Any],
        *,
        enabled: bool,
        device: torch.device,
        generators: Sequence[torch.Generator] = (),
        owners: Sequence[nn.Module | torch.optim.Optimizer] = (),
        warmup_steps: int = 3,
        what: str = "step",
    ) -> None:
        self._step, self.device, self.what = step, device, what
        self.generators = list(generators)
        self.owners = list(owners)
        self.warmup_steps = warmup_steps
        self.mode = "eager"
        self.fallback_reason: str | None = None
        self._graph: Any = None
        self._static_in: list[torch.Tensor] = []
        self._static_out: Any = None
        self._wanted = enabled
        if enabled:
            reason = cuda_graph_unavailable(device)
            if reason is not None:
                self._fall_back(reason)
            else:
                self.mode = "cuda-graph"

    def disable(self, reason: str) -> None:
        """Run eager from now on, recording `reason` (a caller knows the step varies)."""
        if self.mode == "cuda-graph":
            self.invalidate()
            self._fall_back(reason)

    def invalidate(self) -> None:
        """Forget the captured graph (a baked-in constant changed)."""
        self._graph, self._static_in, self._static_out = None, [], None

    def __call__(self, *inputs: torch.Tensor) -> Any:
        if self.mode != "cuda-graph":
            return self._step(*inputs)
        if self._graph is None or not _same_layout(self._static_in, inputs):
            try:
                return self._capture(inputs)
            except Exception as exc:  # capture errors have no common base
                self._fall_back(f"CUDA graph capture failed: {type(exc).__name__}: {exc}")
                self.invalidate()
                return self._step(*inputs)
        for static, new in zip(self._static_in, inputs, strict=True):
            static.copy_(new)
        self._graph.replay()
        return self._static_out

    def _capture(self, inputs: Sequence[torch.Tensor]) -> Any:
        # Warm-up on a side stream (as PyTorch's docs require), so lazy state (optimizer
        # buffers, cuDNN plans) exists before capture. Warm-up steps are real steps: the
        # state of `owners` and `generators` is put back after them, so a call is still one
        # step of training, as in eager.
        self._static_in = [t.clone() for t in inputs]
        saved = _snapshot(self.owners)
        rng = [g.get_state() for g in self.generators]
        stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(self.warmup_steps):
                self._step(*self._static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        _restore(self.owners, saved)
        for generator, state in zip(self.generators, rng, strict=True):
            generator.set_state(state)
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            # A generator the step draws from (drop path) must advance on every replay;
            # without this API the graph would replay one mask forever, so refuse.
            if not hasattr(graph, "register_generator_state"):
                raise RuntimeError("this torch cannot register a generator with a CUDA graph")
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph):
            self._static_out = self._step(*self._static_in)
        self._graph = graph
        # The captured step did not run; replay it once on these inputs, as the call asked.
        graph.replay()
        return self._static_out

    def _fall_back(self, reason: str) -> None:
        self.mode, self.fallback_reason = "eager", reason
        log.warning("CUDA graph off for the %s, running eager: %s", self.what, reason)


def _state_tensors(owner: nn.Module | torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    if isinstance(owner, nn.Module):
        return {n: t for n, t in owner.state_dict(keep_vars=True).items() if t is not None}
    return {
        f"{id(p)}.{k}": v
        for p, state in owner.state.items()
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
    }


def _snapshot(owners: Sequence[nn.Module | torch.optim.Optimizer]) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in _state_tensors(o).items()} for o in owners]


def _restore(
    owners: Sequence[nn.Module | torch.optim.Optimizer], saved: list[dict[str, torch.Tensor]]
) -> None:
    """Copy the saved values back in place (the graph keeps these addresses). Optimizer
    state born in the warm-up (momentum buffers, Adam moments and step) is zeroed, which is
    where SGD without dampening and Adam start."""
    with torch.no_grad():
        for owner, before in zip(owners, saved, strict=True):
            for name, tensor in _state_tensors(owner).items():
                if name in before:
                    tensor.copy_(before[name])
                else:
                    tensor.zero_()


def compile_forward(model: nn.Module, *, enabled: bool, what: str) -> CompiledCall:
    """Route `model(x)` through a `CompiledCall` of its forward (an instance attribute
    shadows the class's `forward`; parameters and state_dict are untouched)."""
    call = CompiledCall(model.forward, enabled=enabled, what=what)
    if enabled:
        object.__setattr__(model, "forward", call)
    return call


def cuda_graph_unavailable(device: torch.device) -> str | None:
    """Why a CUDA graph cannot be captured on `device`, or None when it can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device; this step runs on {device.type}"
    if not torch.cuda.is_available():
        return "CUDA graphs need a CUDA device; none is available"
    if not hasattr(torch.cuda, "CUDAGraph"):
        return "this torch has no torch.cuda.CUDAGraph"
    return None


def _same_layout(static: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor]) -> bool:
    return len(static) == len(inputs) and all(
        s.shape == t.shape and s.dtype == t.dtype and s.stride() == t.stride()
        for s, t in zip(static, inputs, strict=True)
    )


def make_sgd(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    fused: bool,
    device: torch.device,
) -> torch.optim.SGD:
    """SGD, fused into one kernel where asked for and the device has the fused kernel
    (CUDA); the same arithmetic either way, within float rounding."""
    kwargs: dict[str, Any] = {}
    if fused and device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **kwargs)
