"""What a fine-tuning method declares about itself, in its own module of this package: its options (defaults,
ranges and help, which the CLI, recipes and `compare` read), the training-only modules it needs beside the student,
and its loss as named terms. `METHOD = Method(...)` there, and one line in train/methods/__init__.py registers it.

Notation as in docs/DESIGN.md: student logits s, teacher (zero-shot) logits z, labels y, temperature T. Every loss
returns named terms; the trainer sums the keys ending in `_loss` (train.losses.LOSS_SUFFIX) and logs all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, cast

import torch
from torch import nn

from common.artifact import HEAD_KINDS
from common.errors import OptionError, check_choice, check_number


def option(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float = math.inf,
    above: bool = False,
    choices: tuple[str, ...] = (),
) -> Any:
    """A method option: a field of its MethodOptions with its default, its help line, and the numbers (low..high,
    `above` low when the low end is excluded) or `choices` it takes. Its command-line flag is the field name with
    dashes (`kd_alpha`: --kd-alpha)."""
    return field(default=default, metadata={"help": help, "low": low, "high": high, "above": above, "choices": choices})


@dataclass(frozen=True)
class MethodOptions:
    """A method's settings: subclasses declare each as a field made by option(); they are checked on creation."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value: Any = getattr(self, f.name)
            meta, kind = f.metadata, type(f.default)
            if kind is float and type(value) is int:
                value = float(value)
                object.__setattr__(self, f.name, value)
            if type(value) is not kind:
                raise OptionError(f"{f.name} should be {kind.__name__}, not {type(value).__name__} {value!r:.40}")
            if meta.get("choices"):
                check_choice(f.name, str(value), meta["choices"])
            elif meta.get("low") is not None:
                check_number(f.name, cast(float, value), meta["low"], meta["high"], above=meta["above"])


@dataclass(frozen=True)
class NoOptions(MethodOptions):
    """A method without settings of its own."""


class LossInputs(NamedTuple):
    """What one micro-batch gives a loss."""

    student: torch.Tensor | None  # the student's logits; None for a method without a head in training (FLYP)
    teacher: torch.Tensor | None  # the zero-shot teacher's logits, for a method that uses_teacher
    labels: torch.Tensor
    text_cosines: torch.Tensor | None = None  # the "projection" side module's output against the text classifier
    contrastive: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # "text_tower": features and scale


class SideContext(NamedTuple):
    """What a side module is built from."""

    model: str  # the open_clip model, as the run names it
    pretrained: str | None
    text_width: int  # the width of the text classifier's embeddings


@dataclass(frozen=True)
class SideModule:
    """A training-only module beside the student (never exported), trained in the optimizer group `group`: the
    encoder's rate or the head's. The trainer knows two by name: "projection" (its output, against the text
    classifier, is LossInputs.text_cosines) and "text_tower" (caption features, LossInputs.contrastive)."""

    build: Callable[[SideContext], nn.Module]
    group: str  # "encoder" or "head"


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    loss: Callable[[Any, LossInputs], dict[str, torch.Tensor]]  # (its options, the inputs) -> named terms
    options: type[MethodOptions] = NoOptions
    uses_teacher: bool = False  # needs the frozen zero-shot model's logits (cached once when nothing is augmented)
    heads: tuple[str, ...] = HEAD_KINDS  # the heads it can train, the first its default
    side_modules: dict[str, SideModule] = field(default_factory=dict)

    @property
    def trains_text_tower(self) -> bool:
        """Whether it trains CLIP's text tower beside the student (WiSE-FT then interpolates that too)."""
        return "text_tower" in self.side_modules

    def option_fields(self) -> dict[str, Any]:
        """Its options by name: dataclasses.Field, with the default and the metadata option() gave."""
        return {f.name: f for f in fields(self.options)}

    def settings_from_flags(self, args: list[str]) -> dict[str, Any]:
        """Its options as typed on the command line (`--kd-alpha 0.7` or `--kd-alpha=0.7`), by name, checked."""
        options, given, rest = self.option_fields(), {}, list(args)
        flags = ", ".join("--" + name.replace("_", "-") for name in options) or "none"
        while rest:
            flag, _, value = rest.pop(0).partition("=")
            name = flag.removeprefix("--").replace("-", "_")
            if not flag.startswith("--") or name not in options:
                raise OptionError(f"no option {flag} for loss {self.name!r} (its own: {flags}; train --help lists all)")
            if not value:
                if not rest:
                    raise OptionError(f"{flag} needs a value")
                value = rest.pop(0)
            kind = type(options[name].default)
            try:
                given[name] = kind(value)
            except ValueError:
                raise OptionError(f"{flag} {value!r}: give a {'number' if kind is float else kind.__name__}") from None
        return self.settings(given)

    def settings(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every option's value: `given` ones checked, the rest their defaults; an option it does not take is an
        OptionError naming those it does."""
        unknown = sorted(set(given) - set(self.option_fields()))
        if unknown:
            takes = ", ".join(self.option_fields()) or "no options"
            raise OptionError(f"loss {self.name!r} takes {takes}; not {', '.join(unknown)}")
        return vars(self.options(**given)) if self.option_fields() else {}
