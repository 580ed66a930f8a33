"""middle commands of the warpc CLI: compile (discretize, optimise, pack, export) and predict (bit-exact
emulation of the compiled netlist)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import DatasetError


def _depth(value: str | None):
    if value is None:
        return None
    if value == "min":
        return "min"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("--depth takes a number of LUT levels or 'min'") from None


def _table(rows: list[list]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(r, widths)) for r in rows)


@click.command("compile")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--k", "-K", "K", default=4, show_default=True, type=click.IntRange(3, 6), help="LUT size to pack into")
@click.option("--depth", default=None, help="LUT-level bound for packing (a number, or 'min'); default: area only")
@click.option("--no-opt", is_flag=True, help="skip the optimisation passes")
@click.option("--no-pack", is_flag=True, help="skip packing (write the optimised netlist)")
@click.option("--cuts", default=8, show_default=True, type=click.IntRange(2, 64), help="priority cuts per node")
@click.option("--keep-output-bits", is_flag=True,
              help="keep every output bit's function (default: output pairs may be rewritten, class sums kept)")
def compile_cmd(checkpoint, out_dir, K, depth, no_opt, no_pack, cuts, keep_output_bits):
    """Compile CHECKPOINT (or a netlist .json) into DIR/netlist.json and DIR/netlist.blif."""
    from ..ir.compiler import compile as wcompile

    cn = wcompile(checkpoint, K=None if no_pack else K, optimize=not no_opt, depth=_depth(depth), cuts=cuts,
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


def _load_data(checkpoint, dataset, data_dir, npz, split):
    """(x, y or None, dataset name) from --npz, --dataset, or the checkpoint's recorded dataset."""
    import numpy as np

    if npz:
        try:
            d = np.load(npz)
        except OSError as e:
            raise DatasetError(f"cannot read {npz}: {e}") from None
        key = next((k for k in (f"x_{split}", "x") if k in d), None)
        if key is None:
            raise DatasetError(f"{npz} has no array 'x' or 'x_{split}'")
        ykey = key.replace("x", "y", 1)
        return d[key], (d[ykey] if ykey in d else None), str(npz)
    try:
        from ..data import dataset_from_meta, load_dataset
    except ImportError:
        raise DatasetError("warpc.data is not available; pass --npz FILE with an array 'x'") from None
    if dataset:
        ds = load_dataset(dataset, data_dir=data_dir)
    else:
        if Path(checkpoint).suffix == ".json":
            raise DatasetError("a netlist JSON records no dataset; pass --dataset or --npz")
        from ..checkpoint import read_checkpoint

        meta, _ = read_checkpoint(checkpoint)
        ds = dataset_from_meta(meta.get("data") or {}, data_dir=data_dir)
    x, y = ds.split(split)
    return x, y, ds.name


@click.command("predict")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dataset", default=None, help="dataset name or file (default: the checkpoint's dataset)")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False))
@click.option("--npz", default=None, type=click.Path(dir_okay=False), help="features from an .npz (x / x_test, y)")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--k", "K", default=4, show_default=True, type=click.IntRange(3, 6))
@click.option("--no-opt", is_flag=True)
@click.option("--check", is_flag=True, help="also run the PyTorch model and check the class scores are bit-exact")
@click.option("--json", "as_json", is_flag=True, help="print a JSON object (accuracy, predictions, class scores)")
def predict_cmd(checkpoint, dataset, data_dir, npz, split, K, no_opt, check, as_json):
    """Class predictions of the compiled (optimised, packed) netlist, emulated bit-exactly. CHECKPOINT may also
    be a netlist .json written by `warpc compile` (emulated as it is)."""
    import numpy as np

    from ..ir.compiler import compile as wcompile

    x, y, name = _load_data(checkpoint, dataset, data_dir, npz, split)
    if Path(checkpoint).suffix == ".json":  # a compiled netlist: emulate exactly that netlist
        from ..ir.netlist import Netlist

        net = Netlist.load(checkpoint)
        cn = wcompile(net, K=None, optimize=False)
        K = net.meta.get("packed_K", "?")
    else:
        cn = wcompile(checkpoint, K=K, optimize=not no_opt)
    counts = cn.counts(np.asarray(x))
    pred = counts.argmax(1)
    acc = float((pred == np.asarray(y)).mean()) if y is not None and len(pred) else None
    exact = None
    if check:
        if Path(checkpoint).suffix == ".json":
            raise DatasetError("--check needs a checkpoint (a netlist JSON has no PyTorch model)")
        import torch

        from ..checkpoint import load

        model = load(checkpoint)
        ref = model.counts(torch.tensor(np.asarray(x), dtype=torch.float32)).numpy()
        exact = bool((ref == counts).all())
    if as_json:
        click.echo(json.dumps({"dataset": name, "split": split, "n": int(len(pred)), "accuracy": acc,
                               "luts": len(cn.netlist.nodes), "K": K, "bit_exact": exact,
                               "predictions": pred.tolist(), "counts": counts.tolist()}))
        return
    click.echo(f"{name} [{split}]: {len(pred)} samples, netlist {len(cn.netlist.nodes)} LUT{K} cells")
    if acc is not None:
        click.echo(f"accuracy {acc:.4f}")
    if exact is not None:
        click.echo(f"class scores equal PyTorch eval on all {len(pred)} samples: {'yes' if exact else 'NO'}")
    hist = np.bincount(pred, minlength=counts.shape[1])
    click.echo("predicted per class: " + " ".join(str(int(v)) for v in hist))


commands: list[click.Command] = [compile_cmd, predict_cmd]
