"""Fill a model built on the meta device with checkpoint tensors, assigned in place (no double memory)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from max_kernels.gguf import QuantizedWeight, dequantize
from torch import nn
from tqdm.auto import tqdm

from max_pipelines.layers.embedding import VocabEmbedding
from max_pipelines.layers.linear import Linear
from max_pipelines.layers.norm import RMSNorm
from max_pipelines.weights.gguf import PackedTensor
from max_pipelines.weights.mapping import Target, WeightMap

Value = torch.Tensor | PackedTensor


class WeightLoader:
    """Maps, transforms, fuses and assigns checkpoint tensors onto `model`'s parameters.

    Float tensors are cast to `dtype` on `device`, except RMSNorm weights, which stay float32
    (the norm kernels compute in float32; Gemma's `1 + w` keeps its precision). Packed GGUF
    tensors stay packed where they
    feed a `Linear` (unless `keep_packed` is False) and are dequantized to `dtype` anywhere else
    (embedding tables). On the CPU, packed weights of a float32 model use the exact float32
    path of `quantized_linear` unless `cpu_path` names another; other dtypes let it pick its
    fastest path.
    """

    def __init__(
        self,
        model: nn.Module,
        weight_map: WeightMap,
        config: dict,
        device: torch.device,
        dtype: torch.dtype,
        keep_packed: bool = True,
        cpu_path: str | None = None,
    ):
        self.model = model
        self.weight_map = weight_map
        self.config = config
        self.device = device
        self.dtype = dtype
        self.keep_packed = keep_packed
        self.cpu_path = cpu_path or ("float32" if dtype == torch.float32 else "auto")
        self.loaded: set[str] = set()
        self._pending: dict[str, list[Value | None]] = {}

    def load(self, source: Iterable[tuple[str, Value]], total: int, skip: set[str] = frozenset()) -> None:
        bar = tqdm(total=total, desc="Loading weights", unit="tensor", leave=False, disable=None)
        with bar:
            for name, value in source:
                target = self.weight_map.resolve(name)
                if target is not None and target.name not in skip:
                    self._add(target, self._transform(name, value))
                bar.update(1)
        if self._pending:
            incomplete = {k: sum(v is not None for v in p) for k, p in self._pending.items()}
            raise ValueError(f"fused weights missing some parts: {incomplete}")

    def _transform(self, name: str, value: Value) -> Value:
        fn = self.weight_map.transform
        if fn is None:
            return value
        if isinstance(value, PackedTensor):
            return PackedTensor(value.qtype, fn(name, value.data, self.config), value.shape)
        return fn(name, value, self.config)

    def _add(self, target: Target, value: Value) -> None:
        if target.num_shards == 1:
            self._assign(target.name, [value])
            return
        parts = self._pending.setdefault(target.name, [None] * target.num_shards)
        parts[target.shard] = value
        if all(p is not None for p in parts):
            del self._pending[target.name]
            self._assign(target.name, parts)

    def _assign(self, name: str, parts: list[Value]) -> None:
        module_name, _, attr = name.rpartition(".")
        try:
            module = self.model.get_submodule(module_name)
        except AttributeError:
            raise ValueError(f"checkpoint tensor {name!r} has no place in {type(self.model).__name__}") from None
        if getattr(module, attr, None) is None:
            raise ValueError(f"checkpoint tensor {name!r} has no place in {type(self.model).__name__}")
        packed = isinstance(parts[0], PackedTensor)
        if packed and self.keep_packed and isinstance(module, VocabEmbedding) and len(parts) == 1:
            module.blocks = (parts[0].qtype, parts[0].data)  # for an LM head that reads blocks
        if packed and self.keep_packed and isinstance(module, Linear) and attr == "weight":
            module.set_quantized(self._packed(parts))
        else:
            dtype = torch.float32 if isinstance(module, RMSNorm) else self.dtype
            floats = [self._float(p, dtype) for p in parts]
            tensor = torch.cat(floats) if len(floats) > 1 else floats[0]
            expected = getattr(module, attr).shape
            if tensor.shape != expected:
                shape, want = tuple(tensor.shape), tuple(expected)
                raise ValueError(f"checkpoint tensor {name!r} has shape {shape}, expected {want}")
            setattr(module, attr, nn.Parameter(tensor, requires_grad=False))
        self.loaded.add(name)

    def _float(self, value: Value, dtype: torch.dtype) -> torch.Tensor:
        if isinstance(value, PackedTensor):
            raw = value.data.to(self.device)
            return dequantize(raw, value.qtype, value.shape).to(dtype)
        return value.to(device=self.device, dtype=dtype)

    def _packed(self, parts: list[Value]) -> tuple[QuantizedWeight, ...]:
        """One QuantizedWeight per run of equal quantization types (rows concatenated)."""
        groups: list[list[PackedTensor]] = []
        for p in parts:
            if not isinstance(p, PackedTensor):
                raise ValueError("a fused projection mixes float and quantized parts")
            if groups and groups[-1][0].qtype == p.qtype:
                groups[-1].append(p)
            else:
                groups.append([p])
        out = []
        for g in groups:
            data = torch.cat([p.data for p in g]).to(self.device)
            shape = (sum(p.shape[0] for p in g), g[0].shape[1])
            out.append(QuantizedWeight(g[0].qtype, data, shape, cpu_path=self.cpu_path))
        return tuple(out)
