"""AIMP's Figures 3-6 (fig-mask-dynamics): its profiles, the report's choice of runs,
iterations and columns on synthetic histories, and its smoke profile end to end through the CLI."""

import pandas as pd
import pytest

from bench.cli import main
from bench.manifest import load
from bench.report.mask_dynamics import DENSE, MASKS, drawn_in, dynamics_points, panels_figure, render_mask_dynamics
from bench.store import RunStore

from conftest import dry_run_every_profile

TARGET = "fig-mask-dynamics"


def test_every_profile_validates_and_dry_runs(tmp_path, capsys):
    dry_run_every_profile(TARGET, tmp_path)
    assert "fig-mask-dynamics [cpu]: 4 runs, 0 done, 4 to run (232 epochs)" in capsys.readouterr().out


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_every_run_records_the_dynamics_and_so_does_its_one_dense_parent(profile):
    specs = load(TARGET, profile).expand()
    assert {spec.seed for spec in specs} == {0}
    assert all(spec.hp["mask_dynamics"] is True and spec.hp["technique"] == "wr" for spec in specs)
    assert len({spec.parent.run_id for spec in specs}) == 1
    assert (specs[0].parent.hp["mask_dynamics"], specs[0].parent.hp["rewind_points"]) == (0.2, [1])


def test_the_cpu_profile_is_table_aimps_training_with_its_taus():
    manifest = load(TARGET, "cpu")
    assert manifest.training == load("table-aimp", "cpu").training
    taus = {spec.label: spec.hp["partial_epochs"] for spec in manifest.expand()}
    assert taus == {"AIMP_50+WR": 5, "AIMP_40+WR": 4, "AIMP_30+WR": 3}
    assert load(TARGET, "paper").report["iterations"] == [2, 5, 9, 13, 17]


T = 8  # a dense schedule of 8 epochs; WR for t = 7 retrains from epoch 1


def history(phases: dict[str, int], offset: float) -> pd.DataFrame:
    """Synthetic history: ``phases`` (name: epochs) with D = offset + iteration / 10 + epoch / 100,
    D~ = D / 2, and the norms and accuracy derived from D."""
    rows = []
    for i, (phase, epochs) in enumerate(phases.items(), start=1):
        for j in range(1, epochs + 1):
            d = offset + i / 10 + j / 100
            rows.append({"phase": phase, "epoch": len(rows) + 1, "mask_change": d, "mask_change_of_all": d / 2,
                         "weight_linf": 10 * d, "weight_l1_top": 100 * d, "val_accuracy": d, "lr": 0.1})
    return pd.DataFrame(rows)


RECORDS = pd.DataFrame([
    {"run_id": "a50-s1", "label": "AIMP_50", "seed": 1, "hp_retrain_epochs": 7, "parent_run_id": "dense-s1"},
    {"run_id": "a50-s0", "label": "AIMP_50", "seed": 0, "hp_retrain_epochs": 7, "parent_run_id": "dense-s0"},
    {"run_id": "a30-s0", "label": "AIMP_30", "seed": 0, "hp_retrain_epochs": 7, "parent_run_id": "dense-s0"},
])
ITERATIONS = {f"retrain {i}": 2 for i in range(1, 4)} | {"retrain 4": 7}  # 3 partial iterations to tau = 3, a full one
HISTORIES = {"a50-s0": history(ITERATIONS, 0), "a50-s1": history(ITERATIONS, 5), "dense-s0": history({"train": T}, 0.5),
             "dense-s1": history({"train": T}, 7), "a30-s0": history({f"retrain {i}": 1 for i in range(1, 4)}
                                                                    | {"retrain 4": 7}, 0.2)}


def points(iterations=(2, 4)) -> pd.DataFrame:
    return dynamics_points(RECORDS, HISTORIES.__getitem__, labels=["AIMP_50", "AIMP_30"], epochs=T,
                           iterations=list(iterations))


def test_each_figure_draws_its_iterations_of_the_lowest_seed():
    drawn = points()
    assert set(drawn["run_id"]) == {"a50-s0", "a30-s0", "dense-s0"}
    def iterations(figure, label):
        return sorted(set(drawn_in(drawn, figure).query("label == @label")["iteration"]))
    assert iterations(4, "AIMP_50") == [2, 4]  # report.iterations, the final one included when named
    assert iterations(5, "AIMP_50") == iterations(6, "AIMP_50") == [1, 2, 3]  # the intermediate ones
    assert iterations(6, "AIMP_30") == [1, 2, 3] and iterations(4, "AIMP_30") == iterations(5, "AIMP_30") == []
    assert iterations(3, DENSE) == [0]
    assert sorted(set(drawn_in(points(()), 4)["iteration"])) == [0, 1, 2, 3]  # none named: the intermediate ones


def test_epochs_are_those_of_the_schedule_and_values_those_of_the_history():
    drawn = points().set_index(["label", "iteration", "epoch"])
    # WR for t = 7 of T = 8 starts at epoch 1: the j-th epoch of an iteration is epoch 1 + j
    assert drawn.loc[("AIMP_50", 2)].index.tolist() == [2, 3]
    assert drawn.loc[("AIMP_50", 4)].index.tolist() == list(range(2, 9))
    assert drawn.loc[("AIMP_50", 2, 3), "mask_change"] == pytest.approx(0.2 + 0.02)
    assert drawn.loc[("AIMP_50", 2, 3), "mask_change_of_all"] == pytest.approx(0.11)
    dense = drawn.loc[(DENSE, 0)]
    assert dense.index.tolist() == list(range(1, T + 1))
    assert dense["mask_change"].tolist() == pytest.approx([0.6 + j / 100 for j in range(1, T + 1)])
    # beside the iterations of Figure 4 (the last named, 4, ends at epoch 8): all of it; else to epoch 3
    assert (dense["figures"] == "3 4").all()
    assert drawn_in(points((1, 2)), 4).query("label == @DENSE")["epoch"].max() == 3


def test_figure_4_draws_d_left_and_d_tilde_right_with_the_dense_run_dashed():
    drawn = drawn_in(points(), 4)
    left, right = panels_figure(drawn, MASKS, "", legend=True).axes[:2]
    for ax, column in ((left, "mask_change"), (right, "mask_change_of_all")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"dense (i = 0)", "i = 2", "i = 4"}
        assert lines["dense (i = 0)"].get_linestyle() == "--"
        expected = drawn.query("label == 'AIMP_50' and iteration == 2")[column].tolist()
        assert lines["i = 2"].get_ydata().tolist() == pytest.approx(expected)


def test_the_report_writes_four_figures_and_every_plotted_value(tmp_path):
    paths = render_mask_dynamics(points(), labels=["AIMP_50", "AIMP_30"], milestones=[4, 6], out_dir=tmp_path,
                                 title="t")
    assert sorted(path.name for path in paths if path.suffix == ".png") == [
        f"mask-dynamics-{name}.png" for name in ("dense", "masks", "norms", "validation")]
    written = pd.read_csv(tmp_path / "mask-dynamics.csv")
    assert written[["run_id", "iteration", "epoch", "figures"]].equals(points()[["run_id", "iteration", "epoch",
                                                                                 "figures"]])


@pytest.mark.slow
@pytest.mark.targets
def test_mask_dynamics_smoke_end_to_end(dirs):
    results, reports, where = dirs
    assert main(["run", TARGET, "--profile", "smoke", "--executor", "inline", "--quiet", *where]) == 0
    out = reports / TARGET / "smoke"
    assert all((out / f"mask-dynamics-{name}.{ext}").stat().st_size > 0
               for name in ("dense", "masks", "norms", "validation") for ext in ("pdf", "png"))
    drawn = pd.read_csv(out / "mask-dynamics.csv")
    dense = drawn[drawn["label"] == DENSE]
    assert dense["epoch"].tolist() == list(range(1, 9)) and (dense["mask_change"] == dense["mask_change_of_all"]).all()
    aimp50 = drawn[drawn["label"] == "AIMP_50+WR"]
    # tau = 3 of T = 8: the two intermediate iterations of three train epochs 2 and 3
    assert aimp50.groupby("iteration")["epoch"].apply(list).to_dict() == {1: [2, 3], 2: [2, 3]}
    # the values are the history's, as recorded while training
    store = RunStore(results)
    recorded = store.read_history(aimp50["run_id"].iloc[0])
    assert aimp50["mask_change"].tolist() == recorded["mask_change"].iloc[:4].tolist()
    assert (aimp50["mask_change"] >= aimp50["mask_change_of_all"]).all()
