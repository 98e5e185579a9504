"""Transform ops, registered in TRANSFORMS; ``build_transforms`` turns a list of op configs into a Compose."""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence

from passl.registry import TRANSFORMS

__all__ = ["Compose", "build_transforms"]


class Compose:
    """Apply ops in order; ``None`` ops are skipped so a config can switch one off."""

    def __init__(self, ops: Sequence[Callable]) -> None:
        self.ops: List[Callable] = [op for op in ops if op is not None]

    def __call__(self, x: Any) -> Any:
        for op in self.ops:
            x = op(x)
        return x

    def __repr__(self) -> str:
        return "Compose(\n  " + ",\n  ".join(repr(op) for op in self.ops) + "\n)"


def build_transforms(cfgs: Optional[Sequence[Mapping[str, Any]]]) -> Optional[Compose]:
    if cfgs is None:
        return None
    return Compose([TRANSFORMS.build(c) for c in cfgs])


from passl.data.transforms import eval, rand_augment, train  # noqa: E402,F401  (register the ops)
