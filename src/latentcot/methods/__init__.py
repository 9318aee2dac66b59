"""Methods by name: each renders problems for training and inference behind one interface."""

from __future__ import annotations

from ..config import MethodConfig
from .assorted import Assorted
from .base import (IGNORE_INDEX, ContinuousThoughts, Example, Method, TokenizedRecord, continuous_thoughts,
                   tokenize_record, tokenize_records)
from .coconut import (Coconut, CoconutPauseAsThought, CoconutWithoutCurriculum, CoconutWithoutThought,
                      StepCurriculum)
from .codi import CODI, PCCoT
from .cot import CoT, NoCoT
from .icot import ICoT
from .pause import Pause
from ..errors import ConfigError

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (CoT, NoCoT, Coconut, CoconutWithoutCurriculum, CoconutWithoutThought, CoconutPauseAsThought,
                ICoT, Pause, Assorted, CODI, PCCoT)
}


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        import difflib

        close = difflib.get_close_matches(name, list(METHODS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"config key 'method.name': unknown method {name!r}{hint} "
                         f"(choose from {', '.join(METHODS)})")
    return METHODS[name]


def build_method(cfg: MethodConfig, tokenizer, run_dir=None) -> Method:
    """The method ``cfg.name`` names; ``run_dir``: the saved run or exported model ``cfg`` was read from."""
    return method_class(cfg.name)(cfg, tokenizer, run_dir)


__all__ = ["IGNORE_INDEX", "METHODS", "ContinuousThoughts", "Example", "Method", "StepCurriculum", "TokenizedRecord",
           "build_method", "continuous_thoughts", "method_class", "tokenize_record", "tokenize_records"]
