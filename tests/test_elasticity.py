"""SNIP-it's Figure 6 (fig-elasticity): the weight elasticities at initialisation by hand on
a two-layer network, the probe runs that keep them sorted, the figure drawn from their
histories, the manifest in every profile, and the smoke profile end to end."""

import math

import pandas as pd
import pytest
import torch
from torch import nn

from bench.cli import main
from bench.manifest import load, load_all_profiles
from bench.report.elasticity import elasticity_curves, render_elasticities
from bench.store import RunStore
from methods.at_init.sensitivity import weight_elasticity
from schema import ConfigError

from conftest import make_method

A = (torch.tensor([[1.0, 1.0]], dtype=torch.float64), torch.tensor([0]))
LN2 = math.log(2)


def hand_network() -> nn.Sequential:
    """h = W1 x = (1, 0) and logits W2 h = (1, 1) at A: the cross-entropy is ln 2, and its
    gradient W1 [[0, 0], [1, 1]], W2 [[-1/2, 0], [1/2, 0]] (as test_at_init's SNIP by hand)."""
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [1.0, -1.0]]))
        net[1].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 3.0]]))
    return net


def probe(points: int):
    method = make_method("elasticity", {"score_loss": "cross-entropy", "score_batches": 1, "points": points})
    method.use_training_data(lambda: iter([A]))
    return method


def test_weight_elasticity_is_g_times_w_over_the_loss_by_hand():
    # |g * w| = W1 [[0, 0], [1, 1]], W2 [[1/2, 0], [1/2, 0]], over L = ln 2
    first, second = weight_elasticity(hand_network(), [A], "cross-entropy")
    assert torch.allclose(first, torch.tensor([[0, 0], [1, 1]], dtype=torch.float64) / LN2, rtol=0, atol=1e-12)
    assert torch.allclose(second, torch.tensor([[0.5, 0], [0.5, 0]], dtype=torch.float64) / LN2, rtol=0, atol=1e-12)


def test_the_probe_keeps_the_sorted_elasticities_of_all_layers_at_evenly_spaced_ranks():
    ascending = [0, 0, 0, 0, 0.5 / LN2, 0.5 / LN2, 1 / LN2, 1 / LN2]
    rows = probe(8).measurements(hand_network())
    assert [row["rank"] for row in rows] == list(range(8))
    assert [row["share"] for row in rows] == pytest.approx([k / 7 for k in range(8)])
    assert [row["elasticity"] for row in rows] == pytest.approx(ascending, abs=1e-12)
    assert {row["phase"] for row in rows} == {"initialisation"}
    ends = probe(2).measurements(hand_network())  # the least and the most elastic weight
    assert [(row["rank"], row["elasticity"]) for row in ends] == [(0, 0), (7, pytest.approx(1 / LN2))]
    assert make_method("elasticity").phases() == []  # it trains nothing


def test_the_figure_draws_the_runs_sorted_elasticities_under_their_run_ids(tmp_path):
    histories = {"run-a": pd.DataFrame(probe(8).measurements(hand_network())),
                 "run-b": pd.DataFrame(probe(2).measurements(hand_network()))}
    records = pd.DataFrame({"run_id": ["run-b", "run-a"], "label": ["Wide", "Hand"], "dataset": ["digits", "mnist1d"],
                            "model": ["mlp", "two-layer"], "seed": [0, 0]})
    curves = elasticity_curves(records, histories.__getitem__, ["Hand", "Wide"])
    assert list(curves["run_id"]) == ["run-a"] * 8 + ["run-b"] * 2  # in the rows' order
    assert curves.loc[curves["run_id"] == "run-a", "elasticity"].tolist() == histories["run-a"]["elasticity"].tolist()
    render_elasticities(curves, out_dir=tmp_path, title="hand")
    assert all((tmp_path / name).stat().st_size > 0 for name in ("elasticity.pdf", "elasticity.png"))
    written = pd.read_csv(tmp_path / "elasticity.csv")
    assert written[["label", "run_id", "rank"]].values.tolist() == curves[["label", "run_id", "rank"]].values.tolist()
    assert written["elasticity"].to_numpy() == pytest.approx(curves["elasticity"].to_numpy(), abs=1e-15)


def test_the_manifest_expands_to_probe_runs_in_every_profile():
    for manifest in load_all_profiles("fig-elasticity"):
        specs = manifest.expand()
        assert specs and {spec.method for spec in specs} == {"elasticity"}, manifest.profile
        assert all(spec.goal_sparsity is None and spec.training["augment"] == "snipit" for spec in specs)
    datasets = {(spec.label, spec.training["dataset"]) for spec in load("fig-elasticity", "paper").expand()}
    assert {dataset for _, dataset in datasets} == {"mnist", "cifar10", "imagenette"}
    cpu = {(spec.training["dataset"], spec.training["model"]) for spec in load("fig-elasticity", "cpu").expand()}
    assert {dataset for dataset, _ in cpu} == {"mnist1d", "digits"} and ("mnist1d", "resnet1d") in cpu


def test_an_elasticity_figure_takes_no_goals_and_only_runs_that_prune_nothing(write_manifest):
    def figure(data):
        data["report"] = {"kind": "elasticity"}
        data["rows"] = [{"label": "Probe", "method": "elasticity"}]

    assert load(str(write_manifest(lambda data: (figure(data), data.update(goal_sparsities=[])))), "base").expand()
    with pytest.raises(ConfigError, match="goal_sparsities: a report of kind 'elasticity' prunes nothing"):
        load(str(write_manifest(figure)), "base")
    with pytest.raises(ConfigError, match=r"rows\[0\].method: .*method 'snip' prunes to a goal"):
        load(str(write_manifest(lambda data: (figure(data), data.update(goal_sparsities=[]),
                                              data["rows"][0].update(method="snip")))), "base")


@pytest.mark.slow
@pytest.mark.targets
def test_fig_elasticity_smoke_end_to_end(dirs):
    results, reports, where = dirs
    assert main(["run", "fig-elasticity", "--profile", "smoke", "--executor", "inline", "--quiet", *where]) == 0
    out = reports / "fig-elasticity" / "smoke"
    assert all((out / name).stat().st_size > 0 for name in ("elasticity.pdf", "elasticity.png"))
    curves = pd.read_csv(out / "elasticity.csv")
    specs = load("fig-elasticity", "smoke").expand()
    assert set(curves["run_id"]) == {spec.run_id for spec in specs}
    store = RunStore(results)
    for spec in specs:
        record = store.read_record(spec.run_id)
        assert record["own_epochs"] == 0 and record["sparsity"] == 0
        values = curves.loc[curves["run_id"] == spec.run_id, "elasticity"]
        assert len(values) == 1000 and values.is_monotonic_increasing and values.iloc[-1] > 0
