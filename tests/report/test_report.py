"""`htda-bench report` on a tiny real store: tables in the documented layout whose reproduced cells
equal the store's numbers, "not run" wherever nothing was computed, valid PNG figures of the
expected size, and an index that names the runs. Untrained models only: no zoo dependency."""

import argparse
import struct

import pandas as pd
import pytest
import torch

from htda_bench.errors import ConfigError
from htda_bench.harness import resolve_suite, run_targets, state_dict_sha256
from htda_bench.harness.runner import Target
from htda_bench.models import create_model
from htda_bench.report import attention_figures, plots
from htda_bench.report.build import build_report, parse_tables
from htda_bench.report.paper import paper_frame, paper_value
from htda_bench.report.tables import NOT_RUN, TABLE_COLUMNS
from htda_bench.store import ResultsStore

MODELS = ("s-snn-vgg32c-mnist", "htda-vgg32c-mnist")


def untrained(family: str):
    torch.manual_seed(0)
    options = {"attention_source": "layer2"} if family == "htda" else {}
    return create_model(family, "vgg32c", "mnist", **options).eval()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_root):
    """A store from pgd-mnist on 8 examples, 1 seed, eps 40/255 for two untrained models, and the
    report built from it (with an empty zoo, so Fig. 2/3 are skipped)."""
    folder = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HTDA_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "decoded-cache"))
        suite = resolve_suite("pgd-mnist", n_examples=8, seeds=[0], eps=[40 / 255], batch_size=8)
        targets = []
        for name in MODELS:
            model = untrained(name.split("-vgg")[0])
            targets.append(Target(name, model, state_dict_sha256(model)))
        run_targets(suite, targets, folder / "store.sqlite", folder / "leaderboards", data_root, show_progress=False)
        (folder / "zoo").mkdir()
        report = build_report(folder / "out", folder / "store.sqlite", folder / "leaderboards", data_root,
                              zoo=folder / "zoo")
    return folder, report


def read_table(report, number: int) -> pd.DataFrame:
    return pd.read_csv(report.tables[number][0], dtype=str, keep_default_na=False)


def row_of(frame: pd.DataFrame, model: str) -> pd.Series:
    rows = frame[frame["zoo_model"] == model]
    assert len(rows) == 1, model
    return rows.iloc[0]


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def mean_of(cell: str) -> float:
    return float(cell.split(" ± ")[0])


def test_every_table_has_the_documented_columns_and_a_markdown_rendering(tiny):
    _, report = tiny
    assert sorted(report.tables) == [1, 2, 3, 4, 5, 6]
    for number, (csv_path, md_path) in report.tables.items():
        assert csv_path.name == f"table{number}.csv" and csv_path.parent.name == "tables"
        assert list(read_table(report, number).columns) == TABLE_COLUMNS[number]
        text = md_path.read_text()
        assert text.startswith(f"# Table {number}:") and "Dataset variant:" in text
        assert "mnist: torchvision" in text or number == 3  # Table 3 is N-MNIST only
        for column in TABLE_COLUMNS[number]:
            assert column in text or column == "not_run_reason"


def test_reproduced_cells_match_the_store(tiny):
    folder, report = tiny
    with ResultsStore(folder / "store.sqlite") as store:
        outcomes = store.outcomes_frame(suite="pgd-mnist")
        metrics = store.metrics_frame(suite="pgd-mnist", condition="clean")
    table1, table2, table4, table6 = (read_table(report, n) for n in (1, 2, 4, 6))
    for model in MODELS:
        mine = outcomes[outcomes["model"] == model]
        clean = 100 * mine[mine["attack"] == "clean"]["correct"].mean()
        robust = 100 * mine[(mine["attack"] == "pgd") & (mine["eps_key"] == "40")]["correct"].mean()
        mine_metrics = metrics[metrics["model"] == model]
        value = {name: float(group["value"].iloc[0]) for name, group in mine_metrics.groupby("metric")}
        family = model.split("-vgg")[0]

        row = row_of(table1, model)
        assert row["clean"] == f"{clean:.2f} ± 0.00" and row["eps2"] == "40/255"
        assert row["robust_eps2"] == f"{robust:.2f} ± 0.00"
        paper = paper_value(1, "mnist", "vgg32c", family, "pgd eps=40/255", "accuracy_pct")
        assert row["robust_eps2_paper"] == f"{paper[0]:.2f} ± {paper[1]:.2f}"
        assert float(row["robust_eps2_diff"]) == pytest.approx(robust - paper[0], abs=0.011)
        assert row["n_examples"] == "8" and row["seeds"] == "0" and row["dataset_variant"] == "torchvision"

        row = row_of(table2, model)
        assert float(row["macs_m"]) == pytest.approx(value["macs_m"], abs=0.006)
        assert float(row["params_m"]) == pytest.approx(value["params_m"], abs=0.0006)

        row = row_of(table4, model)
        assert row["eps"] == "40/255" and row["robust"] == f"{robust:.2f} ± 0.00"
        assert mean_of(row["firing_rate"]) == pytest.approx(value["firing_rate"], abs=0.006)
        assert row["clean_paper"] == "" and row["robust_paper"] == ""  # the paper's Table 4 is CIFAR-10

        row = row_of(table6, model)
        assert row["accuracy"] == f"{clean:.2f} ± 0.00" and row["time_steps"] == "6"
    ssnn, htda = (float(row_of(table2, model)["macs_m"]) for model in MODELS)
    assert float(row_of(table2, MODELS[1])["macs_change_pct"]) == pytest.approx(100 * (htda - ssnn) / ssnn, abs=0.2)


def test_uncomputed_cells_say_not_run_and_name_what_is_missing(tiny):
    _, report = tiny
    table1 = read_table(report, 1)
    cifar = table1[table1["dataset"] == "cifar10"]
    assert (cifar[["clean", "robust_eps1", "robust_eps2", "robust_eps3"]] == NOT_RUN).all().all()
    assert (cifar["clean_paper"] != "").all() and (cifar["clean_diff"] == "").all()  # paper kept, never copied
    assert cifar["not_run_reason"].str.contains("suite pgd-cifar").all()
    assert (cifar["dataset_variant"] == NOT_RUN).all()
    row = row_of(table1, "htda-vgg64c-mnist")
    assert row["clean"] == NOT_RUN and "htda-vgg64c-mnist" in row["not_run_reason"]
    row = row_of(table1, "s-snn-vgg32c-mnist")
    assert row["robust_eps1"] == NOT_RUN and "20/255" in row["not_run_reason"]
    table4 = read_table(report, 4)
    assert row_of(table4, "htda-vgg32c-mnist-noattn")["firing_rate"] == NOT_RUN
    assert "htda-vgg32c-mnist-fixedlif" in row_of(table4, "htda-vgg32c-mnist-fixedlif")["not_run_reason"]
    table3 = read_table(report, 3)
    assert (table3["clean"] == NOT_RUN).all() and table3["not_run_reason"].str.contains("pgd-nmnist").all()
    table6 = read_table(report, 6)
    ours = table6["method"].str.contains("htda-bench")
    literature = table6[~ours]
    assert (literature["accuracy"] == NOT_RUN).all() and (literature["accuracy_paper"] != "").all()
    cifar_ours = table6[ours & (table6["dataset"] == "cifar10")]
    assert (cifar_ours["accuracy"] == NOT_RUN).all() and cifar_ours["not_run_reason"].str.contains("pgd-cifar").all()
    text = report.tables[1][1].read_text()
    assert "not run: suite pgd-cifar not run" in text and "htda-vgg64c-mnist" in text


def test_result_figures_are_pngs_of_the_expected_size(tiny):
    _, report = tiny
    expected = {"fig4": (1, 1), "fig5": (1, 2), "curves": (1, 1)}
    for name, (rows, columns) in expected.items():
        path, caption = report.figures[name]
        assert path.parent.name == "figures" and caption
        width, height = plots.grid_size(rows, columns)
        assert png_size(path) == (round(width * plots.DPI), round(height * plots.DPI))
    assert any("Fig. 2" in item and "zoo" in item for item in report.skipped)


def test_attention_figures_take_any_attention_model(tiny, mnist_test, tmp_path):
    model = untrained("htda")
    images = mnist_test.as_float(slice(0, 6))
    conditions = attention_figures.perturbed_inputs(images, seed=3)
    again = attention_figures.perturbed_inputs(images, seed=3)
    for name, batch in conditions.items():
        assert batch.shape == images.shape and 0 <= batch.min() and batch.max() <= 1
        assert torch.equal(batch, again[name])
    assert not torch.equal(conditions["translated + rotated"], images)
    path = attention_figures.attention_figure(model, images, tmp_path / "fig2.png", labels=[0, 1, 2, 3, 4, 5])
    assert png_size(path) == attention_figures.expected_pixels(6)
    from htda_bench.metrics.attention import attention_maps

    maps = attention_maps(model, mnist_test.as_float(slice(0, 16))).numpy()
    path = plots.attention_histograms({"mnist": {"untrained htda": maps}}, tmp_path / "fig3.png")
    width, height = plots.grid_size(1, 1)
    assert png_size(path) == (round(width * plots.DPI), round(height * plots.DPI))
    with pytest.raises(ValueError, match="attention"):
        attention_figures.attention_figure(untrained("s-snn"), images, tmp_path / "no.png")


def test_index_names_the_runs_and_what_was_generated(tiny):
    folder, report = tiny
    text = report.index.read_text()
    with ResultsStore(folder / "store.sqlite") as store:
        runs = store.runs_frame(suite="pgd-mnist")
    assert len(runs) == 2
    for run in runs.itertuples():
        assert "| pgd-mnist | 1 | results store" in text and run.run_id in text and run.model in text
    assert "torchvision" in text and "Generated " in text and "UTC" in text
    assert "tables/table1.csv" in text and "figures/fig4_firing_rates.png" in text
    assert "Suites with no results:" in text and "pgd-cifar" in text


def test_cli_handler_writes_only_the_requested_tables(tiny, tmp_path):
    folder, _ = tiny
    from htda_bench.cli import report_cmd

    parser = argparse.ArgumentParser()
    report_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "--tables", "1,4", "--out", str(tmp_path / "r"), "--quiet",
                              "--store", str(folder / "store.sqlite"), "--leaderboards", str(folder / "leaderboards")])
    assert args.handler(args) == 0
    assert sorted(p.name for p in (tmp_path / "r" / "tables").iterdir()) == [
        "table1.csv", "table1.md", "table4.csv", "table4.md"]
    assert not (tmp_path / "r" / "figures").exists() and (tmp_path / "r" / "README.md").is_file()
    assert parse_tables(None) == (1, 2, 3, 4, 5, 6)
    with pytest.raises(ConfigError, match="tables"):
        parse_tables("2,7")


def test_missing_store_gives_an_all_not_run_report(tmp_path):
    report = build_report(tmp_path / "out", tmp_path / "absent.sqlite", tmp_path / "no-leaderboards",
                          tables=[1], figures=False)
    table = read_table(report, 1)
    assert (table["clean"] == NOT_RUN).all() and (table["clean_paper"] != "").all()
    assert not (tmp_path / "absent.sqlite").exists()  # reading never creates a store


def test_reference_data_ships_with_the_package():
    frame = paper_frame()
    assert sorted(frame["table"].unique()) == [1, 2, 3, 4, 5, 6] and len(frame) == 144
    assert paper_value(1, "mnist", "vgg32c", "htda", "pgd eps=40/255", "accuracy_pct") == (79.52, 0.66)
    assert paper_value(2, "cifar10", "vgg128c", "s-snn", "", "params_m")[0] == 13.52


def test_attention_figures_for_every_htda_model_of_a_zoo(data_root, tmp_path):
    """A throwaway zoo holding one untrained HTDA model (and an S-SNN, which Fig. 2/3 leave out)."""
    from htda_bench.models.checkpoint import save_weights
    from htda_bench.utils import sha256_file, write_json_atomic

    zoo = tmp_path / "zoo"
    for name in MODELS:
        save_weights(untrained(name.split("-vgg")[0]), zoo / "weights" / f"{name}.safetensors")
        card = {key: "" for key in ("recipe", "hardware", "date", "git_commit")}
        card.update(name=name, family=name.split("-vgg")[0], arch="vgg32c", dataset="mnist",
                    dataset_variant="torchvision", weights=f"weights/{name}.safetensors", test_accuracy=0.0,
                    weights_sha256=sha256_file(zoo / "weights" / f"{name}.safetensors"), test_examples=0,
                    epochs=0, wall_time_s=0)
        write_json_atomic(zoo / f"{name}.json", card)
    report = build_report(tmp_path / "out", tmp_path / "absent.sqlite", None, data_root, tables=[], zoo=zoo)
    path, caption = report.figures["fig2:htda-vgg32c-mnist"]
    assert path.name == "fig2_attention_maps_htda-vgg32c-mnist.png" and "translated" in caption
    assert png_size(path) == attention_figures.expected_pixels(6)
    assert png_size(report.figures["fig3"][0]) == tuple(round(v * plots.DPI) for v in plots.grid_size(1, 1))
    assert not any(key.startswith("fig2:s-snn") for key in report.figures)
    assert {"fig4", "fig5", "curves"}.isdisjoint(report.figures)  # nothing in the (absent) store
    assert "fig2_attention_maps_htda-vgg32c-mnist.png" in report.index.read_text()


def test_reliability_section_states_whether_the_advantage_survives(tmp_path):
    from htda_bench.report.reliability import advantage_paragraph, reliability_sections

    board = pd.DataFrame([
        {"model": "s-snn-vgg32c-mnist", "family": "s-snn", "arch": "vgg32c", "n_examples": 20, "seeds": "0",
         "pgd_acc_eps20": 5.0, "apgd_ce_acc_eps20": 0.0, "robust_acc_eps20_mean": 0.0, "flags_failed": None},
        {"model": "htda-vgg32c-mnist", "family": "htda", "arch": "vgg32c", "n_examples": 20, "seeds": "0",
         "pgd_acc_eps20": 75.0, "apgd_ce_acc_eps20": 35.0, "robust_acc_eps20_mean": 35.0,
         "flags_failed": "pgd_converged"},
    ])
    text = advantage_paragraph(board, "reliable-mnist")
    assert "75.0% against S-SNN's 5.0% (+70.0 points)" in text
    assert "35.0% against 0.0% (+35.0 points): the advantage shrinks under the worst case" in text
    assert "HTDA: pgd_converged" in text
    (tmp_path / "lb").mkdir()
    board.to_csv(tmp_path / "lb" / "reliable-mnist.csv", index=False)
    (tmp_path / "fig").mkdir()
    [(path, caption, paragraph)] = reliability_sections(tmp_path / "lb", tmp_path / "fig")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paragraph == text
