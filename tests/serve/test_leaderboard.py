"""The methods comparison's leaderboard on hand-made cells (no training): mean +- std over seeds, the knob and the
WiSE-FT alpha chosen on validation, held-out sets kept apart, the order of the rows, and the files it writes."""

import json
import math
import statistics
from dataclasses import asdict
from pathlib import Path

import pytest

from common.errors import UserError
from common.typed_json import from_json
from serve.leaderboard import (
    ZERO_SHOT,
    AlphaScore,
    Cell,
    Leaderboard,
    Row,
    SetScore,
    _metrics,
    leaderboard,
    leaderboard_table,
    markdown,
    method_rows,
    read_leaderboard,
    wise_choice,
    write_leaderboard,
)
from serve.robustness_plot import PlotCurve, PlotPoint, plot_id_vs_ood

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def score(
    val: float, id_: float, ood: tuple[float, float], holdout: float | None = None, wg=(None, None)
) -> AlphaScore:
    """One model: an ID set, two OOD sets (sketch with worst group wg[0], blur with wg[1]) and, given, a held-out
    set whose worst group (0.01) is lower than any other, so that it would win worst_group if it counted."""
    sets = {
        "id_test": SetScore("id", id_),
        "sketch": SetScore("ood", ood[0], wg[0]),
        "blur": SetScore("ood", ood[1], wg[1]),
    }
    if holdout is not None:
        sets["jpeg"] = SetScore("holdout", holdout, 0.01)
    return AlphaScore(val, sets)


def approx(mean: float, std: float) -> tuple:
    return (pytest.approx(mean, abs=1e-12), pytest.approx(std, abs=1e-12))


def strict_loads(text: str):
    """json.loads that fails on NaN, Infinity and -Infinity, which strict JSON parsers refuse."""

    def refuse(token: str):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------------------------ scores, metrics


def test_an_alpha_score_means_its_sets_by_role():
    s = AlphaScore(
        0.5,
        {
            "a": SetScore("id", 0.8),
            "b": SetScore("id", 0.6),
            "c": SetScore("ood", 0.3, 0.2),
            "d": SetScore("ood", 0.5, 0.4),
            "e": SetScore("holdout", 0.9, 0.05),
        },
    )
    assert s.id_top1() == pytest.approx(0.7)
    assert s.mean("ood") == pytest.approx(0.4)
    assert s.mean("holdout") == pytest.approx(0.9)
    assert s.mean("nothing") is None
    assert s.worst_group() == 0.2  # the held-out set's 0.05 does not count
    assert AlphaScore(0.5, {"a": SetScore("id", 0.8)}).worst_group() is None  # no set has groups


def test_metrics_are_mean_and_sample_std_over_seeds():
    # Three seeds; every number chosen so that mean and std are easy by hand.
    seeds = [
        score(0.70, 0.60, (0.40, 0.20), holdout=0.30, wg=(0.10, 0.15)),  # ood mean 0.30, worst group 0.10
        score(0.80, 0.70, (0.50, 0.30), holdout=0.40, wg=(0.25, 0.20)),  # ood mean 0.40, worst group 0.20
        score(0.90, 0.80, (0.60, 0.40), holdout=0.50, wg=(0.30, 0.35)),  # ood mean 0.50, worst group 0.30
    ]
    m = _metrics(seeds)
    assert list(m) == ["val", "id", "sketch", "blur", "holdout:jpeg", "ood_mean", "worst_group", "holdout_mean"]
    assert m["val"] == approx(0.80, 0.10)  # stdev([.7, .8, .9]) = sqrt((.01 + 0 + .01) / 2) = 0.1
    assert m["id"] == approx(0.70, 0.10)
    assert m["sketch"] == approx(0.50, 0.10)
    assert m["blur"] == approx(0.30, 0.10)
    assert m["ood_mean"] == approx(0.40, 0.10)
    assert m["worst_group"] == approx(0.20, 0.10)  # each seed's min over ID and OOD sets; the holdout's 0.01 is not
    assert m["holdout:jpeg"] == approx(0.40, 0.10)
    assert m["holdout_mean"] == approx(0.40, 0.10)
    # Two seeds: the sample standard deviation (n - 1), not the population one.
    two = _metrics(seeds[:2])
    assert two["id"] == approx(0.65, math.sqrt(2 * 0.05**2))
    assert two["id"][1] == pytest.approx(statistics.stdev([0.6, 0.7]))


def test_one_seed_has_std_zero_and_unmeasured_metrics_are_none():
    m = _metrics([score(0.5, 0.6, (0.3, 0.5))])
    assert m["ood_mean"] == approx(0.4, 0.0)
    assert m["worst_group"] is None  # no set has groups
    assert m["holdout_mean"] is None  # no held-out sets
    assert not any(k.startswith("holdout:") for k in m)


def test_held_out_sets_are_reported_apart_under_their_own_keys():
    m = _metrics([score(0.5, 0.6, (0.2, 0.4), holdout=0.9, wg=(0.3, 0.2))])
    assert "jpeg" not in m and m["holdout:jpeg"] == approx(0.9, 0.0)
    assert m["ood_mean"] == approx(0.3, 0.0)  # (0.2 + 0.4) / 2: the held-out 0.9 is not in it
    assert m["worst_group"] == approx(0.2, 0.0)  # not the held-out set's 0.01
    assert m["holdout_mean"] == approx(0.9, 0.0)


def test_row_mean_of_is_minus_one_when_unmeasured():
    row = Row("x", "", "1", 1, {"ood_mean": (0.4, 0.0), "worst_group": None})
    assert row.mean_of("ood_mean") == 0.4
    assert row.mean_of("worst_group") == -1.0
    assert row.mean_of("not-a-metric") == -1.0


# -------------------------------------------------------------------------------------------------- WiSE-FT choice


def test_wise_choice_takes_the_highest_validation_top1():
    assert wise_choice({0.0: 0.5, 0.5: 0.9, 1.0: 0.7}) == 0.5


def test_wise_choice_breaks_ties_to_the_smaller_alpha_whatever_the_order():
    tie = {1.0: 0.8, 0.5: 0.8, 0.25: 0.7}
    assert wise_choice(tie) == 0.5
    assert wise_choice(dict(reversed(tie.items()))) == 0.5
    assert wise_choice({a: 0.6 for a in (1.0, 0.75, 0.0, 0.5)}) == 0.0


def test_wise_choice_may_pick_the_zero_shot_model():
    assert wise_choice({0.0: 0.9, 0.5: 0.8, 1.0: 0.6}) == 0.0


# ------------------------------------------------------------------------------------------------- method rows


ZS = score(0.60, 0.50, (0.50, 0.32), holdout=0.20)  # the zero-shot model: val 0.6, ood mean 0.41


def kd_cells() -> list[Cell]:
    """Two knobs x two seeds. kd_alpha=0.5 has the better mean validation top-1 at alpha 1 (0.75 vs 0.65), though
    kd_alpha=0.75 is better on OOD and better on validation at alpha 0.5: the choice is made at alpha 1 only."""

    def cell(knob: str, seed: int, at1: AlphaScore, at_half: AlphaScore) -> Cell:
        return Cell("kd", knob, seed, f"cells/kd-{knob}-s{seed}", {0.5: at_half, 1.0: at1})

    return [
        cell("kd_alpha=0.75", 0, score(0.60, 0.9, (0.9, 0.9)), score(0.99, 0.9, (0.9, 0.9))),
        cell("kd_alpha=0.75", 1, score(0.70, 0.9, (0.9, 0.9)), score(0.99, 0.9, (0.9, 0.9))),
        # seed 0: val 0.7 at alpha 1, 0.8 at alpha 0.5 (> zero-shot's 0.6) -> WiSE picks 0.5
        cell("kd_alpha=0.5", 0, score(0.70, 0.80, (0.20, 0.40), holdout=0.1), score(0.80, 0.70, (0.40, 0.40), 0.3)),
        # seed 1: val 0.8 at alpha 1, 0.5 at 0.5, zero-shot 0.6 -> WiSE picks 1
        cell("kd_alpha=0.5", 1, score(0.80, 0.90, (0.30, 0.50), holdout=0.2), score(0.50, 0.80, (0.50, 0.50), 0.4)),
    ]


def test_method_rows_choose_the_knob_on_validation_at_alpha_one():
    fine, fixed, chosen = method_rows(kd_cells(), ZS, fixed_alpha=0.5)
    assert [(r.name, r.knob, r.seeds) for r in (fine, fixed, chosen)] == [
        ("kd", "kd_alpha=0.5", 2),
        ("kd+wise", "kd_alpha=0.5", 2),
        ("kd+wise", "kd_alpha=0.5", 2),
    ]
    # The fine-tuned row: the two kd_alpha=0.5 seeds at alpha 1.
    assert fine.alpha == "1"
    assert fine.metrics["val"] == approx(0.75, statistics.stdev([0.7, 0.8]))
    assert fine.metrics["id"] == approx(0.85, statistics.stdev([0.8, 0.9]))
    assert fine.metrics["ood_mean"] == approx(0.35, statistics.stdev([0.3, 0.4]))
    assert fine.metrics["holdout:jpeg"] == approx(0.15, statistics.stdev([0.1, 0.2]))
    # WiSE-FT at the fixed alpha: both seeds at 0.5.
    assert fixed.alpha == "0.5"
    assert fixed.metrics["val"] == approx(0.65, statistics.stdev([0.8, 0.5]))
    assert fixed.metrics["ood_mean"] == approx(0.45, statistics.stdev([0.4, 0.5]))


def test_method_rows_choose_wise_alpha_per_seed_on_validation():
    *_, chosen = method_rows(kd_cells(), ZS, fixed_alpha=0.5)
    assert chosen.alpha == "val: 0.5,1"  # seed 0 at 0.5, seed 1 at 1 (the cells' order)
    assert chosen.metrics["val"] == approx(0.80, 0.0)  # 0.8 (seed 0 at 0.5) and 0.8 (seed 1 at 1)
    assert chosen.metrics["id"] == approx(0.80, statistics.stdev([0.7, 0.9]))
    assert chosen.metrics["ood_mean"] == approx(0.40, 0.0)  # 0.4 and 0.4


def test_the_validation_choice_may_be_the_zero_shot_model():
    """A seed whose every alpha is worse on validation than the zero-shot model takes its scores at alpha 0."""
    zs = score(0.95, 0.50, (0.50, 0.30), holdout=0.20)
    cells = [
        # seed 0: 0.9 at both alphas, below zero-shot's 0.95 -> alpha 0
        Cell("ce", "", 0, "s0", {0.5: score(0.9, 0.9, (0.1, 0.1), 0.9), 1.0: score(0.9, 1, (0, 0), 0.9)}),
        # seed 1: 0.96 at alpha 0.5 -> 0.5
        Cell("ce", "", 1, "s1", {0.5: score(0.96, 0.7, (0.6, 0.6), 0.4), 1.0: score(0.7, 1, (0, 0), 0.9)}),
    ]
    *_, chosen = method_rows(cells, zs, fixed_alpha=0.5)
    assert chosen.alpha == "val: 0,0.5"
    assert chosen.metrics["val"] == approx(statistics.fmean([0.95, 0.96]), statistics.stdev([0.95, 0.96]))
    assert chosen.metrics["id"] == approx(0.6, statistics.stdev([0.5, 0.7]))
    assert chosen.metrics["ood_mean"] == approx(0.5, statistics.stdev([0.4, 0.6]))
    assert chosen.metrics["holdout_mean"] == approx(0.3, statistics.stdev([0.2, 0.4]))
    # A tie with the zero-shot model goes to alpha 0 too.
    tie = [Cell("ce", "", 0, "r", {1.0: score(0.95, 1, (1, 1), 1)})]
    assert method_rows(tie, zs, fixed_alpha=0.5)[-1].alpha == "val: 0"


def test_no_val_row_when_validation_chose_one_rows_alpha_for_every_seed():
    """The val-chosen row repeats a row when every seed picked that row's alpha (issue 24: 'val: 1' rows identical to
    the plain rows); seeds that pick different alphas, or alpha 0 (the zero-shot model, not a row of the method),
    keep it."""
    every_one = [Cell("ce", "", s, "r", {0.5: score(0.5, 1, (0, 0)), 1.0: score(0.99, 1, (0, 0))}) for s in (0, 1)]
    assert [r.alpha for r in method_rows(every_one, ZS, fixed_alpha=0.5)] == ["1", "0.5"]
    every_half = [Cell("ce", "", s, "r", {0.5: score(0.99, 1, (0, 0)), 1.0: score(0.5, 1, (0, 0))}) for s in (0, 1)]
    assert [r.alpha for r in method_rows(every_half, ZS, fixed_alpha=0.5)] == ["1", "0.5"]
    mixed = [every_one[0], every_half[1]]
    assert [r.alpha for r in method_rows(mixed, ZS, fixed_alpha=0.5)] == ["1", "0.5", "val: 1,0.5"]
    below_zero_shot = [Cell("ce", "", 0, "r", {1.0: score(0.1, 1, (0, 0))})]
    assert [r.alpha for r in method_rows(below_zero_shot, ZS, fixed_alpha=0.5)] == ["1", "val: 0"]


def test_no_fixed_alpha_row_when_a_cell_lacks_that_alpha():
    cells = kd_cells()
    del cells[3].alphas[0.5]
    rows = method_rows(cells, ZS, fixed_alpha=0.5)
    assert [(r.name, r.alpha) for r in rows] == [("kd", "1"), ("kd+wise", "val: 0.5,1")]


# ------------------------------------------------------------------------------------------------- leaderboard


def ce_cells(ood: float, holdout: float | None = None) -> list[Cell]:
    return [
        Cell("ce", "", s, f"cells/ce-s{s}", {1.0: score(0.7, 0.9, (ood, ood), holdout, wg=(0.1, 0.2))}) for s in (0, 1)
    ]


def test_leaderboard_has_the_zero_shot_row_and_is_sorted_by_mean_ood():
    rows = leaderboard(ce_cells(0.1, holdout=0.9) + kd_cells(), ZS, fixed_alpha=0.5)
    assert [(r.name, r.alpha) for r in rows] == [
        ("kd+wise", "0.5"),  # ood mean 0.45
        (ZERO_SHOT, "0"),  # 0.41
        ("kd+wise", "val: 0.5,1"),  # 0.40
        ("kd", "1"),  # 0.35
        ("ce", "1"),  # 0.10 (ce beats zero-shot on validation: both seeds pick alpha 1, the row above: no val row)
    ]
    assert [r.mean_of("ood_mean") for r in rows] == pytest.approx([0.45, 0.41, 0.40, 0.35, 0.10])
    zero_shot = rows[1]
    assert (zero_shot.knob, zero_shot.seeds) == ("", 1)
    assert zero_shot.metrics["val"] == approx(0.6, 0.0) and zero_shot.metrics["holdout:jpeg"] == approx(0.2, 0.0)


def test_rows_without_an_ood_mean_sort_last():
    only_id = AlphaScore(0.9, {"id_test": SetScore("id", 0.9)})
    cells = [Cell("id-only", "", 0, "r", {1.0: only_id})] + ce_cells(0.05)
    rows = leaderboard(cells, ZS, fixed_alpha=0.5)
    assert [(r.name, r.alpha) for r in rows] == [
        (ZERO_SHOT, "0"),
        ("ce", "1"),
        ("id-only", "1"),
    ]
    assert rows[-1].metrics["ood_mean"] is None and rows[-1].mean_of("ood_mean") == -1.0


# ---------------------------------------------------------------------------------------------------- markdown


def test_markdown_has_a_held_out_section_only_when_there_are_held_out_sets():
    with_holdout = markdown(leaderboard(kd_cells(), ZS, 0.5), "with")
    rows_without = leaderboard(ce_cells(0.3), score(0.6, 0.5, (0.5, 0.3)), 0.5)
    without = markdown(rows_without, "without")
    assert "## Held-out shifts" in with_holdout and "holdout:jpeg" in with_holdout and "holdout_mean" in with_holdout
    assert "Held-out" not in without and "holdout" not in without
    assert without.startswith("# without\n")
    table = [line for line in without.splitlines() if line.startswith("|")]
    head = ["recipe", "knob", "WiSE alpha", "seeds", "val", "id", "sketch", "blur", "ood_mean", "worst_group"]
    assert table[0] == "| " + " | ".join(head) + " |"
    assert len(table) == 2 + len(rows_without)
    assert all(line.count("|") == len(head) + 1 for line in table)
    # Mean +- std in percent; a metric never measured is "-".
    ce = next(line for line in table if line.startswith("| ce | "))
    assert "| 70.0 |" in ce  # val 0.7 on both seeds: no "± 0.0"
    zero_shot = next(line for line in table if line.startswith(f"| {ZERO_SHOT} |"))
    assert zero_shot.rstrip(" |").endswith("-")  # the zero-shot model's sets have no groups: worst_group is "-"
    kd_fine = next(line for line in with_holdout.splitlines() if line.startswith("| kd | kd_alpha=0.5 | 1 |"))
    assert "75.0 ± 7.1" in kd_fine  # val: 0.75 +- stdev(0.7, 0.8) = 0.0707


def test_the_held_out_table_is_ranked_by_held_out_mean():
    text = markdown(leaderboard(kd_cells(), ZS, 0.5), "t")
    section = text.split("## Held-out shifts")[1]
    table = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| recipe")]
    names = [line.split(" | ")[0][2:] + " " + line.split(" | ")[2] for line in table]
    # holdout means: kd+wise 0.5 -> 0.35; val choice (0.3, 0.2) -> 0.25; zero-shot 0.2; kd 0.15
    assert names == ["kd+wise 0.5", "kd+wise val: 0.5,1", f"{ZERO_SHOT} 0", "kd 1"]


# ------------------------------------------------------------------------------------------------------- files


def test_write_leaderboard_writes_strict_json_markdown_and_a_png(tmp_path: Path):
    # No set has groups and there are no held-out sets: worst_group and holdout_mean are unmeasured (None).
    zs = score(0.6, 0.5, (0.5, 0.3))
    cells = [Cell("ce", "", s, f"cells/ce-s{s}", {0.5: score(0.8, 0.8, (0.4, 0.4)), 1.0: score(0.7, 0.9, (0.2, 0.2))})
             for s in (0, 1)]  # fmt: skip
    rows = write_leaderboard(cells, zs, 0.5, tmp_path, "a title")
    data = strict_loads((tmp_path / "leaderboard.json").read_text())
    assert data["title"] == "a title"
    assert [r["name"] for r in data["rows"]] == [r.name for r in rows]
    assert data["rows"][0]["metrics"]["worst_group"] is None and data["rows"][0]["metrics"]["holdout_mean"] is None
    assert data["rows"][0]["metrics"]["ood_mean"] == [pytest.approx(0.4), 0.0]
    assert [c["seed"] for c in data["cells"]] == [0, 1]
    assert set(data["cells"][0]["alphas"]) == {"0.5", "1"}  # alphas as JSON keys, written as they read
    sketch = data["cells"][0]["alphas"]["1"]["sets"]["sketch"]
    assert sketch == {"role": "ood", "top1": 0.2, "worst_group_top1": None, "n": 0, "correct": None}
    assert all(r["versus"] == {} and r["tied"] is None for r in data["rows"])  # no per-image results: no intervals
    assert data["zero_shot"]["val_top1"] == 0.6
    assert (tmp_path / "leaderboard.md").read_text().startswith("# a title\n")
    png = (tmp_path / "leaderboard.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaderboard.json", "leaderboard.md", "leaderboard.png"]
    # The one reader gives back what was written.
    assert read_leaderboard(tmp_path / "leaderboard.json") == Leaderboard("a title", rows, cells, zs)
    (tmp_path / "leaderboard.json").write_text('{"title": "t", "rows": [], "cells": [{"alphas": {"x": {}}}]}')
    with pytest.raises(UserError, match="cannot read leaderboard .*leaderboard.json"):
        read_leaderboard(tmp_path / "leaderboard.json")


def test_write_leaderboard_when_no_cell_has_an_ood_set(tmp_path: Path):
    """An ID-only comparison: ood_mean is unmeasured everywhere, the JSON stays strict and the plot has no points."""
    zs = AlphaScore(0.5, {"id_test": SetScore("id", 0.5)})
    cells = [Cell("ce", "", 0, "r", {1.0: AlphaScore(0.7, {"id_test": SetScore("id", 0.8)})})]
    write_leaderboard(cells, zs, 0.5, tmp_path, "id only")
    data = strict_loads((tmp_path / "leaderboard.json").read_text())
    assert all(r["metrics"]["ood_mean"] is None for r in data["rows"])
    assert (tmp_path / "leaderboard.png").read_bytes().startswith(PNG_MAGIC)


def test_plot_id_vs_ood_writes_a_png_and_no_temporary_file(tmp_path: Path):
    points = [PlotPoint("zero-shot", 0.5, 0.4), PlotPoint("ce", 0.9, 0.3, 0.01, 0.02)]
    curve = PlotCurve("ce WiSE-FT", [PlotPoint("0", 0.5, 0.4), PlotPoint("0.5", 0.8, 0.45), PlotPoint("1", 0.9, 0.3)])
    path = tmp_path / "plot.png"
    plot_id_vs_ood(points, [curve], path, "a title")
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_an_alpha_score_reads_back_from_the_json_it_is_stored_as():
    """workflows stores each cell's AlphaScores (compare-scores.json, zero-shot-scores.json) with asdict and reads
    them back with common.typed_json.from_json; the leaderboard then needs SetScores, not dicts."""
    stored = score(0.7, 0.8, (0.4, 0.6), holdout=0.3, wg=(0.2, None))
    back = from_json(AlphaScore, json.loads(json.dumps(asdict(stored))), "compare-scores.json", UserError)
    assert back == stored
    assert back.worst_group() == 0.2 and back.mean("holdout") == 0.3


# ------------------------------------------------------------------------------------------------------ intervals


def measured(val: float, rates: dict[str, tuple[str, float, int]], rng) -> AlphaScore:
    """One model with per-image results: per set (role, accuracy, images), drawn image by image."""

    from serve.intervals import pack_correct

    sets = {}
    for name, (role, rate, n) in rates.items():
        correct = rng.random(n) < rate
        sets[name] = SetScore(role, float(correct.mean()), None, n, pack_correct(correct))
    return AlphaScore(val, sets)


def test_leaderboard_intervals_match_a_reference_bootstrap_and_mark_ties():
    """Rows built from known per-image results: each row's difference to the best on mean OOD is the difference of
    the point means, and its interval is what a plain loop bootstrap over seeds and images gives; rows whose interval
    holds 0 are marked tied, in leaderboard.json and leaderboard.md; the default row gets its own differences."""
    import numpy as np

    from serve.intervals import RowSamples, unpack_correct
    from tests.serve.test_intervals import loop_bootstrap

    rng = np.random.default_rng(7)

    def model(val: float, ood: float) -> AlphaScore:
        sets = {"id_test": ("id", 0.9, 600), "a": ("ood", ood, 1500), "b": ("ood", ood - 0.1, 1000)}
        return measured(val, {**sets, "h": ("holdout", 0.5, 800)}, rng)

    cells = [Cell("ce", "", s, f"ce{s}", {0.5: model(0.9, 0.80), 1.0: model(0.95, 0.70)}) for s in range(3)]
    cells += [Cell("kd", "", s, f"kd{s}", {0.5: model(0.9, 0.795), 1.0: model(0.95, 0.72)}) for s in range(3)]
    zero_shot = model(0.5, 0.60)
    rows = leaderboard(cells, zero_shot, 0.5, default=("kd+wise", "0.5"))
    by = {(r.name, r.alpha): r for r in rows}
    best, close, ce_one = rows[0], rows[1], by[("ce", "1")]  # ce+wise and kd+wise, half a point apart, lead
    assert {(best.name, best.alpha), (close.name, close.alpha)} == {("ce+wise", "0.5"), ("kd+wise", "0.5")}
    assert best.versus["best"]["ood_mean"] == [0.0, 0.0, 0.0]

    def samples(row: Row) -> RowSamples:
        scores = [c.alphas[float(row.alpha)] for c in cells if c.recipe == row.name.removesuffix("+wise")]
        ood = [{k: unpack_correct(s.correct, s.n) for k, s in a.sets.items() if s.role == "ood"} for a in scores]
        return RowSamples(ood)

    reference = {"best": samples(best), "close": samples(close), "ce1": samples(ce_one)}
    for row, label in ((close, "close"), (ce_one, "ce1")):
        value, low, high = row.versus["best"]["ood_mean"]
        assert value == pytest.approx(row.metrics["ood_mean"][0] - best.metrics["ood_mean"][0], abs=1e-9)
        ref_low, ref_high = loop_bootstrap(reference, "best", label, 1000)
        width = ref_high - ref_low
        assert low == pytest.approx(ref_low, abs=0.12 * width) and high == pytest.approx(ref_high, abs=0.12 * width)
        assert row.tied == (low <= 0 <= high)
    assert close.tied and not ce_one.tied  # half a point apart: a tie; ten points: not
    kd_half = by[("kd+wise", "0.5")]
    if kd_half is best:  # the default is the best row: no second set of the same differences
        assert set(kd_half.versus) == {"best"}
    else:
        assert set(kd_half.versus) == {"best", "default"} and kd_half.versus["default"]["id"] == [0.0, 0.0, 0.0]
    assert set(best.versus["best"]) == {"ood_mean", "id", "holdout_mean"}
    text = markdown(rows, "t")
    assert "## Differences, with 95% intervals" in text and ("ood_mean vs default" in text) == (kd_half is not best)
    assert f"Not separable from it on mean OOD: {close.name} at WiSE-FT alpha 0.5." in text
    header, table = leaderboard_table(rows)
    assert header[-1] == "OOD vs best, pp [95%]" and table[0][-1] == "best"
    assert table[1][-1].endswith(" tie") and not table[rows.index(ce_one)][-1].endswith(" tie")
