"""middle commands of the warpc CLI: compile (discretize, optimise, pack, export) and predict (bit-exact
emulation of the compiled netlist)."""
from __future__ import annotations

import json
from pathlib import Path

import click


def _depth(value: str | None):
    if value is None:
        return None
    if value == "min":
        return "min"
    try:
        depth = int(value)
    except ValueError:
        depth = 0
    if depth < 1:
        raise click.BadParameter(f"{value!r}: give a number of LUT levels (1 or more) or 'min'",
                                 param_hint="'--depth'")
    return depth


def _table(rows: list[list]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(r, widths)) for r in rows)


@click.command("compile")
@click.argument("source", metavar="SOURCE", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="output folder (created if missing) for netlist.json, netlist.blif, compile_report.json")
@click.option("--lut-size", "-K", "lut_size", default=4, show_default=True, type=click.IntRange(3, 6),
              help="inputs per LUT cell to pack into (4 for iCE40)")
@click.option("--depth", default=None, show_default="area only, no bound",
              help="LUT-level bound for packing: a number, or 'min' for the minimum depth")
@click.option("--no-opt", is_flag=True, help="skip the optimisation passes")
@click.option("--no-pack", is_flag=True, help="skip packing (write the optimised netlist)")
@click.option("--cuts", default=8, show_default=True, type=click.IntRange(2, 64), help="priority cuts kept per node")
@click.option("--keep-output-bits", is_flag=True,
              help="keep every output bit's function (default: output pairs may be rewritten, class sums kept)")
def compile_cmd(source, out_dir, lut_size, depth, no_opt, no_pack, cuts, keep_output_bits):
    """Compile SOURCE (a checkpoint .safetensors, or a netlist .json) into OUT/netlist.json and OUT/netlist.blif."""
    from ..ir.compiler import check_out_dir, compile as wcompile

    depth = _depth(depth)
    check_out_dir(out_dir)
    cn = wcompile(source, K=None if no_pack else lut_size, optimize=not no_opt, depth=depth, cuts=cuts,
                  keep_output_bits=keep_output_bits)
    paths = cn.save(out_dir)
    r = cn.report
    click.echo("nodes per layer:")
    click.echo(_table(cn.layer_table()))
    click.echo("")
    rows = [["stage", "nodes", "by k", "depth", "input bits used"]]
    for name, st in r["stats"].items():
        rows.append([name, st["nodes"], " ".join(f"k{k}:{v}" for k, v in st["nodes_by_k"].items()) or "-",
                     st["depth"], f"{st['inputs_used']}/{r['stats']['discretized']['inputs']}"])
    click.echo(_table(rows))
    if r["passes"]:
        click.echo("")
        click.echo("passes (totals over all rounds):")
        for name, what in r["passes"].items():
            items = ", ".join(f"{k}={v}" for k, v in what.items() if v and k != "nodes_removed")
            click.echo(f"  {name}: removed {what.get('nodes_removed', 0)} nodes" + (f"; {items}" if items else ""))
    if r["pack"]:
        p = r["pack"]
        click.echo(f"\npacked into {p['luts']} LUT{p['K']} cells "
                   f"({' '.join(f'k{k}:{v}' for k, v in p['luts_by_k'].items())}), depth {p['depth']}"
                   + (f" (bound {p['depth_bound']})" if p["depth_bound"] is not None else "")
                   + f", {p['seconds']:.2f} s")
    click.echo(f"total {r['timings']['total_s']:.2f} s; wrote " + ", ".join(str(Path(v).name) for v in paths.values())
               + f" to {out_dir}")


@click.command("predict")
@click.argument("source", metavar="SOURCE", type=click.Path(dir_okay=False))
@click.option("--dataset", default=None, show_default="the dataset the model was trained on",
              help="dataset name (digits, iris, fashion-mnist, ...) or a .csv / .npz data file")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              show_default="the recorded folder, else the dataset's default folder",
              help="folder with the dataset files (IDX, CIFAR batches)")
@click.option("--npz", default=None, type=click.Path(dir_okay=False),
              help="features from an .npz file: array x_<split> or x, labels y_<split> or y (optional)")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]),
              help="which split of the dataset (or of the .npz) to predict")
@click.option("--lut-size", "-K", "lut_size", default=4, show_default=True, type=click.IntRange(3, 6),
              help="inputs per LUT cell to pack a checkpoint into (a netlist JSON is emulated as it is)")
@click.option("--no-opt", is_flag=True, help="skip the optimisation passes (pack the discretized netlist as it is)")
@click.option("--check", is_flag=True,
              help="also run the PyTorch model and check every class score is equal (checkpoints only)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON object (accuracy, predictions, class scores)")
def predict_cmd(source, dataset, data_dir, npz, split, lut_size, no_opt, check, as_json):
    """Class predictions of the compiled (optimised, packed) netlist, emulated bit-exactly. SOURCE is a
    checkpoint .safetensors, or a netlist .json written by `warpc compile` (emulated as it is)."""
    import numpy as np

    from ..ir.predict import predict

    r = predict(source, lut_size=lut_size, optimize=not no_opt, dataset=dataset, data_dir=data_dir, npz=npz,
                split=split, check=check)
    net, n = r.netlist, len(r.predictions)
    size = f"LUT{net.packed_k}" if net.packed_k else "unpacked"
    if as_json:
        click.echo(json.dumps({"data": r.data.name, "split": split, "n": n, "accuracy": r.accuracy,
                               "luts": len(net.nodes), "K": net.packed_k, "bit_exact": r.bit_exact,
                               "predictions": r.predictions.tolist(), "counts": r.counts.tolist()}))
        return
    click.echo(f"{r.data.name}: {n} samples, netlist {len(net.nodes)} {size} cells")
    if r.accuracy is not None:
        click.echo(f"accuracy {r.accuracy:.4f}")
    if r.bit_exact is not None:
        click.echo(f"class scores equal PyTorch eval on all {n} samples: {'yes' if r.bit_exact else 'NO'}")
    hist = np.bincount(r.predictions, minlength=r.counts.shape[1])
    click.echo("predicted per class: " + " ".join(str(int(v)) for v in hist))


commands: list[click.Command] = [compile_cmd, predict_cmd]
