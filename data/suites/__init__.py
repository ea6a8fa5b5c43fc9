"""Readers of the standard robustness suites, each from the layout its authors distribute (no conversion step).

A module here defines `SUITES`, a list of `Suite`s; `registry` finds them. A data spec `SUITE[/VARIANT]:ROOT`
(`pacs/sketch:/data/PACS`) names one; data.specs resolves it for training and evaluation.
"""
