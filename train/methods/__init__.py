"""The fine-tuning methods, by name: one module each (its options, training-only modules and loss terms: base.Method)
and one line below. The CLI's choices, options and help, the recipes and `compare` read this registry."""

from __future__ import annotations

from train.methods import ce, flyp, kd, proreg, tes
from train.methods.base import Method

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        proreg.METHOD,
        kd.METHOD,
        ce.METHOD,
        tes.METHOD,
        flyp.METHOD,
    )
}
