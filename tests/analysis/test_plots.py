import csv
import math

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from mi_analysis.analysis.plots import (
    mode_color,
    mode_label,
    plot_accuracy_vs_k,
    plot_information_along_depth,
    plot_information_panel,
    plot_information_plane,
    plot_local_accuracy,
    plot_memory_vs_k,
    read_table,
    save_figure,
)

UNITS = ("stem", "s1.b0", "s2.b0", "s3.b0")


def probe_layout(cuts):
    """(point, depth, module) in probe order for 4 units cut after the unit indices in `cuts`."""
    layout, module = [], 0
    for unit, name in enumerate(UNITS):
        if unit > 0 and unit - 1 in cuts:
            module += 1
            layout.append((f"m{module}.in", module))
        layout.append((name, module))
    return [(point, depth, module) for depth, (point, module) in enumerate(layout)]


def mi_rows(mode, K, cuts, values, *, seed=0, epoch=10, width=0.1, **columns):
    """One run's rows; values[i] is the value at the i-th probe point, CI = value -+ width.
    columns override quantity ("I(h;y)"), estimator ("probe") and kind ("lower_bound")."""
    layout = probe_layout(cuts)
    assert len(values) == len(layout)
    run = {"run": f"{mode}-K{K}-s{seed}", "mode": mode, "K": K, "seed": seed, "epoch": epoch, "n": 1000}
    measure = {"quantity": "I(h;y)", "estimator": "probe", "kind": "lower_bound", **columns}
    return [
        {**run, **measure, "point": point, "depth": depth, "module": module,
         "value": v, "ci_low": v - width, "ci_high": v + width}
        for (point, depth, module), v in zip(layout, values)
    ]


E2E_Y = [2.3, 2.2, 2.1, 2.0]
R0_Y = [2.3, 2.0, 1.9, 1.6, 1.2]  # stem, s1.b0 | m1.in, s2.b0, s3.b0
R0_X = [0.0, 1.0, 1.5, 2.0, 3.0]  # m1.in sits on the cut after unit 1


def table():
    return mi_rows("E2E", 1, (), E2E_Y) + mi_rows("R0", 2, (1,), R0_Y)


def line(ax, gid):
    found = [artist for artist in ax.lines if artist.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def band(ax, gid):
    found = [artist for artist in ax.collections if artist.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0].get_paths()[0].vertices


def boundaries(ax, k):
    return sorted(artist.get_xdata()[0] for artist in ax.lines if artist.get_gid() == f"boundary:K{k}")


# ---------------------------------------------------------------- along the depth


def test_along_depth_lines_equal_table_values_with_layers_aligned():
    figure = plot_information_along_depth(table())
    ax = figure.axes[0]
    assert isinstance(figure, Figure)
    assert np.allclose(line(ax, "curve:E2E:K1").get_xydata(), list(zip(range(4), E2E_Y)))
    assert np.allclose(line(ax, "curve:R0:K2").get_xydata(), list(zip(R0_X, R0_Y)))
    assert boundaries(ax, 2) == [1.5]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[:2] == ["E2E", "GLL (R0)"]
    assert "nats" in ax.get_ylabel() and "lower bound" in ax.get_ylabel() and "probe" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == list(UNITS)
    assert line(ax, "curve:E2E:K1").get_color() == "black"
    assert line(ax, "curve:R0:K2").get_color() == mode_color("R0")


def test_along_depth_band_spans_the_ci():
    ax = plot_information_along_depth(table()).axes[0]
    vertices = band(ax, "band:R0:K2")
    for x, y in zip(R0_X, R0_Y):
        at_x = vertices[np.isclose(vertices[:, 0], x)][:, 1]
        assert at_x.min() == pytest.approx(y - 0.1) and at_x.max() == pytest.approx(y + 0.1)
    assert vertices[:, 0].min() == 0.0 and vertices[:, 0].max() == 3.0


def test_along_depth_averages_seeds_and_band_covers_every_seed():
    rows = mi_rows("E", 2, (1,), R0_Y, seed=0) + mi_rows("E", 2, (1,), [v + 0.2 for v in R0_Y], seed=1, width=0.3)
    ax = plot_information_along_depth(rows).axes[0]
    assert np.allclose(line(ax, "curve:E:K2").get_ydata(), [v + 0.1 for v in R0_Y])
    vertices = band(ax, "band:E:K2")
    first = vertices[np.isclose(vertices[:, 0], 0.0)][:, 1]
    assert first.min() == pytest.approx(2.3 - 0.1) and first.max() == pytest.approx(2.5 + 0.3)


def test_along_depth_uses_last_epoch_per_run_unless_told():
    rows = mi_rows("R0", 2, (1,), R0_Y, epoch=1) + mi_rows("R0", 2, (1,), [v / 2 for v in R0_Y], epoch=5)
    ax = plot_information_along_depth(rows).axes[0]
    assert np.allclose(line(ax, "curve:R0:K2").get_ydata(), [v / 2 for v in R0_Y])
    ax = plot_information_along_depth(rows, epoch=1).axes[0]
    assert np.allclose(line(ax, "curve:R0:K2").get_ydata(), R0_Y)
    with pytest.raises(ValueError, match=r"epoch 3; epochs: \[1, 5\]"):
        plot_information_along_depth(rows, epoch=3)


def test_along_depth_reads_csv_files(tmp_path):
    rows = table()
    path = tmp_path / "mi.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert all(isinstance(v, str) for v in read_table(path)[0].values())
    ax = plot_information_along_depth(path).axes[0]
    assert np.allclose(line(ax, "curve:R0:K2").get_xydata(), list(zip(R0_X, R0_Y)))


def test_along_depth_marks_boundaries_per_k_and_filters_k():
    four = mi_rows("R0", 4, (0, 1, 2), [2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4])
    rows = table() + four
    ax = plot_information_along_depth(rows).axes[0]
    assert boundaries(ax, 2) == [1.5]
    assert boundaries(ax, 4) == [0.5, 1.5, 2.5]
    assert np.allclose(line(ax, "curve:R0:K4").get_xdata(), [0, 0.5, 1, 1.5, 2, 2.5, 3])
    assert line(ax, "curve:R0:K2").get_linestyle() != line(ax, "curve:R0:K4").get_linestyle()
    assert "GLL (R0), K=4" in [t.get_text() for t in ax.get_legend().get_texts()]
    ax = plot_information_along_depth(rows, K=4).axes[0]
    assert {artist.get_gid() for artist in ax.lines} == {"curve:E2E:K1", "curve:R0:K4", "boundary:K4"}
    with pytest.raises(ValueError, match=r"K=8; local K values: \[2, 4\]"):
        plot_information_along_depth(rows, K=8)


def test_same_unit_lines_up_across_k_for_real_taps():
    try:
        from mi_analysis.models import build
    except ImportError as missing:  # the models package is written in parallel
        pytest.skip(f"mi_analysis.models.build not available: {missing}")
    rows = []
    for K, mode in ((1, "E2E"), (4, "R0")):
        net = build("resnet20", K, context=mode if K > 1 else "R0", image_size=8)
        for name in net.taps:
            p = net.tap(name)
            where = {"run": mode, "mode": mode, "K": K, "point": name, "depth": p.depth, "module": p.module}
            rows.append({**table()[0], **where, "value": float(p.unit), "ci_low": 0.0, "ci_high": 0.0})
        cut_units = net.cuts
    ax = plot_information_along_depth(rows).axes[0]
    e2e, local = line(ax, "curve:E2E:K1").get_xydata(), line(ax, "curve:R0:K4").get_xydata()
    assert all(x == unit for x, unit in e2e)  # value = flat unit index of the point
    units = {x: unit for x, unit in local if x == int(x)}
    assert all(x == unit for x, unit in units.items()) and len(units) == len(e2e)
    assert boundaries(ax, 4) == [c + 0.5 for c in cut_units]


def test_boundary_found_without_module_input_points():
    rows = [row for row in table() if row["point"] != "m1.in"]
    assert boundaries(plot_information_along_depth(rows).axes[0], 2) == [1.5]


def test_along_depth_draws_into_given_axes():
    figure = Figure()
    ax = figure.add_subplot()
    assert plot_information_along_depth(table(), ax=ax) is figure
    assert line(ax, "curve:E2E:K1")


def test_information_panel_shows_both_quantities():
    rows = table() + [dict(row, quantity="I(h;x)", estimator="decoder", kind="proxy") for row in table()]
    figure = plot_information_panel(rows)
    left, right = figure.axes
    assert left.get_ylabel().startswith("I(h;x) [nats], proxy: decoder")
    assert right.get_ylabel().startswith("I(h;y) [nats], lower bound: probe")
    assert np.allclose(line(left, "curve:R0:K2").get_ydata(), R0_Y)
    assert left.get_legend() is None and right.get_legend() is not None


@pytest.mark.parametrize(
    "rows, kwargs, message",
    [
        ([], {}, "mi_rows is empty"),
        ([{"run": "a", "mode": "E2E"}], {}, r"lacks column\(s\) \['K', 'ci_high'"),
        (table(), {"quantity": "I(x;y)"}, r"unknown quantity 'I\(x;y\)'; valid: \['I\(h;x\)', 'I\(h;y\)'\]"),
        (table(), {"quantity": "I(h;x)"}, r"no rows for quantity 'I\(h;x\)'"),
        (table(), {"estimator": "ksg"}, r"estimator 'ksg'; it has \['probe'\]"),
        (table() + [dict(table()[0], estimator="ksg")], {}, r"several estimators .* \['ksg', 'probe'\]"),
        (table() + [table()[0]], {}, "duplicate"),
        ([dict(table()[0], value="abc")], {}, "column 'value' holds 'abc'"),
        ([dict(table()[0], depth="1.5")], {}, "column 'depth' holds '1.5', not an integer"),
    ],
)
def test_along_depth_errors(rows, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_information_along_depth(rows, **kwargs)


def test_table_type_error():
    with pytest.raises(TypeError, match="mi_rows must be a CSV path or a list of dicts"):
        plot_information_along_depth(42)


# ---------------------------------------------------------------- information plane


def plane_rows():
    rows = []
    for epoch, scale in ((1, 1.0), (5, 2.0), (3, 1.5)):  # out of order on purpose
        rows += mi_rows("R0", 2, (1,), [scale * v for v in R0_Y], epoch=epoch)
        ix = [10 * scale + d for d in range(5)]
        rows += mi_rows("R0", 2, (1,), ix, epoch=epoch, quantity="I(h;x)", estimator="decoder", kind="proxy")
    return rows


def test_information_plane_connects_epochs_per_layer():
    figure = plot_information_plane(plane_rows())
    ax = figure.axes[0]
    layers = [artist.get_gid() for artist in ax.lines if artist.get_gid().startswith("layer:")]
    assert layers == ["layer:stem", "layer:s1.b0", "layer:m1.in", "layer:s2.b0", "layer:s3.b0"]
    scales = (1.0, 1.5, 2.0)  # epochs 1, 3, 5
    for depth, point in enumerate(["stem", "s1.b0", "m1.in", "s2.b0", "s3.b0"]):
        expected = [(10 * s + depth, s * R0_Y[depth]) for s in scales]
        assert np.allclose(line(ax, f"layer:{point}").get_xydata(), expected)
        assert np.allclose(line(ax, f"last:{point}").get_xydata(), [expected[-1]])
    colors = [line(ax, f"layer:{p}").get_color() for p in ("stem", "s3.b0")]
    assert colors[0] != colors[1]  # coloured by depth
    assert len(figure.axes) == 2  # the plot and its depth colour bar
    assert "nats" in ax.get_xlabel() and "nats" in ax.get_ylabel()


def test_information_plane_needs_one_mode_and_both_quantities():
    rows = plane_rows() + [dict(row, mode="E", run="E-run") for row in plane_rows()]
    with pytest.raises(ValueError, match=r"several mode values \['R0', 'E'\]; pass mode="):
        plot_information_plane(rows)
    assert plot_information_plane(rows, mode="E")
    only_y = [row for row in plane_rows() if row["quantity"] == "I(h;y)"]
    with pytest.raises(ValueError, match=r"no rows for quantity 'I\(h;x\)'"):
        plot_information_plane(only_y)


# ---------------------------------------------------------------- accuracy and memory


def summaries():
    e2e = (0.92, 0.94)
    rows = [dict(mode="E2E", K=1, seed=s, test_acc=a, peak_memory_bytes=8 * 2**30) for s, a in enumerate(e2e)]
    for k, accs in ((2, (0.90, 0.88, 0.86)), (4, (0.80, 0.84, 0.82))):
        rows += [dict(mode="R0", K=k, seed=s, test_acc=a, peak_memory_bytes=2**30 * 8 // k) for s, a in enumerate(accs)]
    return rows


def errorbar_segments(ax):
    collections = [c for c in ax.collections if isinstance(c, LineCollection)]
    return [np.asarray(segment) for c in collections for segment in c.get_segments()]


def test_accuracy_vs_k_plots_mean_and_sd_over_seeds():
    ax = plot_accuracy_vs_k(summaries()).axes[0]
    assert np.allclose(line(ax, "curve:R0").get_xydata(), [(2, 88.0), (4, 82.0)])
    assert line(ax, "e2e").get_ydata()[0] == pytest.approx(93.0)
    segments = errorbar_segments(ax)
    assert any(np.allclose(s, [(2, 86.0), (2, 90.0)]) for s in segments)  # sd of 86, 88, 90 is 2
    assert "%" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4"]


def test_accuracy_vs_k_as_error():
    ax = plot_accuracy_vs_k(summaries(), error=True).axes[0]
    assert np.allclose(line(ax, "curve:R0").get_ydata(), [12.0, 18.0])
    assert ax.get_ylabel() == "test error (%)"


def test_memory_vs_k_in_binary_units():
    ax = plot_memory_vs_k(summaries()).axes[0]
    assert np.allclose(line(ax, "curve:R0").get_xydata(), [(2, 4.0), (4, 2.0)])
    assert line(ax, "e2e").get_ydata()[0] == pytest.approx(8.0)
    assert ax.get_ylabel() == "peak memory (GiB)"
    small = [dict(row, peak_memory_bytes=3 * 2**20) for row in summaries()]
    assert plot_memory_vs_k(small).axes[0].get_ylabel() == "peak memory (MiB)"


@pytest.mark.parametrize(
    "function, rows, message",
    [
        (plot_accuracy_vs_k, [], "summary_rows is empty"),
        (plot_accuracy_vs_k, [dict(mode="R0", K=2, seed=0)], r"lacks column\(s\) \['test_acc'\]"),
        (plot_accuracy_vs_k, [dict(mode="R0", K=2, seed=0, test_acc=91.0)], r"fraction in \[0, 1\], got 91.0"),
        (plot_memory_vs_k, [dict(mode="R0", K=2, seed=0)], r"\['peak_memory_bytes'\]"),
    ],
)
def test_summary_errors(function, rows, message):
    with pytest.raises(ValueError, match=message):
        function(rows)


# ---------------------------------------------------------------- local accuracy


def metrics(mode, finals, seed=0):
    """metrics.csv-like rows: epochs 1 and 2; epoch 2 holds `finals`, epoch 1 half of them."""
    return [
        dict(mode=mode, seed=seed, epoch=epoch, **{f"acc_m{k}": a * epoch / 2 for k, a in enumerate(finals)})
        for epoch in (1, 2)
    ]


def test_local_accuracy_per_module_at_last_epoch_averaged_over_seeds():
    rows = metrics("R0", [0.5, 0.6, 0.7]) + metrics("R0", [0.7, 0.8, 0.9], seed=1) + metrics("E", [0.6, 0.8, 0.9])
    ax = plot_local_accuracy(rows).axes[0]
    assert np.allclose(line(ax, "curve:R0:K3").get_xydata(), [(0, 60.0), (1, 70.0), (2, 80.0)])
    assert np.allclose(line(ax, "curve:E:K3").get_ydata(), [60.0, 80.0, 90.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["GLL (R0)", "ContSup (E)"]
    ax = plot_local_accuracy(rows, epoch=1).axes[0]
    assert np.allclose(line(ax, "curve:E:K3").get_ydata(), [30.0, 40.0, 45.0])


def test_local_accuracy_from_metrics_files_per_mode(tmp_path):
    paths = {}
    for mode, finals in (("R0", [0.5, 0.6]), ("E", [0.7, math.nan])):
        paths[mode] = tmp_path / f"{mode}.csv"
        rows = [{k: v for k, v in row.items() if k != "mode"} for row in metrics(mode, finals)]
        with open(paths[mode], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    ax = plot_local_accuracy(paths).axes[0]
    assert np.allclose(line(ax, "curve:R0:K2").get_ydata(), [50.0, 60.0])
    e = line(ax, "curve:E:K2").get_ydata()
    assert e[0] == pytest.approx(70.0) and math.isnan(e[1])  # a contrast head has no accuracy


def test_local_accuracy_filters_one_k_and_keeps_e2e():
    rows = metrics("E2E", [0.9]) + metrics("R0", [0.5, 0.6]) + metrics("R0", [0.4, 0.5, 0.6, 0.7])
    ax = plot_local_accuracy(rows, K=4).axes[0]
    assert {l.get_gid() for l in ax.lines if (l.get_gid() or "").startswith("curve:")} == {"curve:E2E:K1", "curve:R0:K4"}
    assert np.allclose(line(ax, "curve:R0:K4").get_ydata(), [40.0, 50.0, 60.0, 70.0])
    with pytest.raises(ValueError, match=r"K=8 has no runs; available K: \[1, 2, 4\]"):
        plot_local_accuracy(rows, K=8)


def test_local_accuracy_errors():
    with pytest.raises(ValueError, match=r"rows lacks column\(s\) \['mode'\]"):
        plot_local_accuracy([{"acc_m0": 0.5}])
    with pytest.raises(ValueError, match="no run at epoch 7"):
        plot_local_accuracy(metrics("R0", [0.5]), epoch=7)
    with pytest.raises(ValueError, match=r"acc_m1 must be a fraction in \[0, 1\]"):
        plot_local_accuracy([dict(mode="R0", acc_m0=0.5, acc_m1=50.0)])


# ---------------------------------------------------------------- saving and style


def test_save_figure_writes_png_and_pdf(tmp_path):
    figure = plot_information_along_depth(table())
    png, pdf = save_figure(figure, tmp_path / "figures" / "depth")
    assert png.read_bytes().startswith(b"\x89PNG") and pdf.read_bytes().startswith(b"%PDF")
    assert (png.name, pdf.name) == ("depth.png", "depth.pdf")
    assert save_figure(figure, tmp_path / "again.png")[1].name == "again.pdf"


def test_no_pyplot_figures_are_left_open():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_information_panel(table() + [dict(row, quantity="I(h;x)") for row in table()])
    plot_accuracy_vs_k(summaries())
    assert plt.get_fignums() == before


def test_mode_labels_and_colours():
    assert [mode_label(m) for m in ("E2E", "R0", "E", "R1E")] == ["E2E", "GLL (R0)", "ContSup (E)", "ContSup (R1E)"]
    assert mode_color("E2E") == "black" and mode_color("R0") == "tab:red"
    assert mode_color("R32E") == mode_color("R32E")  # unknown modes still get a fixed colour


def test_seed_bands_overlay_the_ci_of_the_mean_over_seeds():
    rows = (mi_rows("E", 2, (1,), R0_Y, seed=0) + mi_rows("E", 2, (1,), [v + 0.2 for v in R0_Y], seed=1)
            + mi_rows("E", 2, (1,), [v + 0.4 for v in R0_Y], seed=2))
    ax = plot_information_along_depth(rows, seed_bands=True).axes[0]
    vertices = band(ax, "seedband:E:K2")
    first = vertices[np.isclose(vertices[:, 0], 0.0)][:, 1]
    half = 4.302652729911275 * 0.2 / np.sqrt(3)  # t_{0.975, 2} * sd(2.3, 2.5, 2.7) / sqrt(3)
    assert first.min() == pytest.approx(2.5 - half) and first.max() == pytest.approx(2.5 + half)
    one_seed = plot_information_along_depth(rows[: len(rows) // 3], seed_bands=True).axes[0]
    assert not any(artist.get_gid() == "seedband:E:K2" for artist in one_seed.collections)
