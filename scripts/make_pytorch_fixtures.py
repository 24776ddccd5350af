#!/usr/bin/python3
"""Writes the small torch.save fixtures of tests/test_pytorch.c into tests/data/pytorch/, and
fuzz seeds into tests/fuzz-seeds/{pytorch,pickle,zip}/. Run with /usr/bin/python3 (needs torch).

Tensor values are simple formulas (documented next to each tensor) so the C test can compute
the expected numbers itself; torch writes the bytes, so the test checks our reader against an
independent writer. The files are a few KB each; rerunning reproduces them byte for byte
(torch writes no timestamps into zip archives), except legacy.pt, whose old format embeds
random storage keys."""
import json
import os
import zipfile

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "data", "pytorch")
SEEDS = os.path.join(ROOT, "tests", "fuzz-seeds")


def ramp(n, dtype, scale=1.0, bias=0.0):
    """element i = i * scale + bias, computed in float64 then converted (exact for these sizes)."""
    return (torch.arange(n, dtype=torch.float64) * scale + bias).to(dtype)


def save(obj, name, **kw):
    path = os.path.join(OUT, name)
    torch.save(obj, path, **kw)
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    paths = []
    # One tensor per supported dtype; element i of the flattened tensor noted per entry.
    dtypes = {
        "f32": ramp(12, torch.float32, 0.5, -1.0).reshape(3, 4),  # i*0.5 - 1
        "f16": ramp(6, torch.float16, 0.25, -0.5).reshape(2, 3),  # i*0.25 - 0.5
        "bf16": ramp(8, torch.bfloat16, -2.0, 3.0),  # -2i + 3
        "f64": ramp(5, torch.float64, 0.1, 0.0),  # i*0.1
        "i64": ramp(4, torch.int64, -1000000000000.0, 7.0),  # 7 - i*1e12
        "i32": ramp(4, torch.int32, -3.0, 1.0),  # 1 - 3i
        "i16": ramp(3, torch.int16, 300.0, -300.0),  # 300i - 300
        "i8": ramp(4, torch.int8, -30.0, 20.0),  # 20 - 30i
        "u8": ramp(4, torch.uint8, 60.0, 10.0),  # 10 + 60i
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),  # 0-dim
        "empty": torch.zeros(0, 4),
    }
    paths.append(save(dtypes, "dtypes.pt"))

    # Views sharing one storage, at offsets: base element i = i; "tied" is the same tensor
    # object as "whole" (pickled once, referenced again through the memo, like tied weights).
    base = ramp(20, torch.float32)
    whole = base.view(4, 5)
    paths.append(save({"whole": whole, "mid": base[2:7], "tail": base[10:].view(2, 5), "tied": whole}, "shared.pt"))

    # A transposed view: refused as non-contiguous.
    paths.append(save({"ok": ramp(3, torch.float32), "t": ramp(6, torch.float32).reshape(2, 3).t()}, "noncontig.pt"))

    # A training checkpoint: weights under "model", nested modules, optimizer state beside.
    nested = {
        "model": {"embed": {"weight": ramp(6, torch.float32, 1.0, 1.0).reshape(3, 2)}, "norm.weight": ramp(2, torch.float32, 0.0, 1.0)},
        "optimizer": {"state": {0: {"step": torch.tensor(5.0)}}, "param_groups": [{"lr": 0.1}]},
        "epoch": 3,
    }
    paths.append(save(nested, "nested.pt"))

    # A real module's state dict (OrderedDict with _metadata -> BUILD), its keep_vars variant
    # (Parameters -> _rebuild_parameter), and protocol 4 (STACK_GLOBAL, MEMOIZE, FRAME).
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(ramp(6, torch.float32, 0.125, -0.25).reshape(2, 3))  # i/8 - 1/4
        lin.bias.copy_(torch.tensor([10.0, -10.0]))
    paths.append(save(lin.state_dict(), "linear.pt"))
    paths.append(save(lin.state_dict(keep_vars=True), "params.pt"))
    paths.append(save(lin.state_dict(), "linear_p4.pt", pickle_protocol=4))

    # The pre-1.6 format: refused.
    save({"a": ramp(2, torch.float32)}, "legacy.pt", _use_new_zipfile_serialization=False)

    # A sharded checkpoint: 3 tensors over 2 shards, with its index.
    sh = os.path.join(OUT, "sharded")
    os.makedirs(sh, exist_ok=True)
    s1 = {"a.weight": ramp(4, torch.float32, 1.0, 0.0), "b.weight": ramp(2, torch.float16, 1.0, 4.0)}
    s2 = {"c.weight": ramp(3, torch.bfloat16, 1.0, 6.0)}
    torch.save(s1, os.path.join(sh, "pytorch_model-00001-of-00002.bin"))
    torch.save(s2, os.path.join(sh, "pytorch_model-00002-of-00002.bin"))
    index = {
        "metadata": {"total_size": 4 * 4 + 2 * 2 + 3 * 2},
        "weight_map": {
            "a.weight": "pytorch_model-00001-of-00002.bin",
            "b.weight": "pytorch_model-00001-of-00002.bin",
            "c.weight": "pytorch_model-00002-of-00002.bin",
        },
    }
    with open(os.path.join(sh, "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=2)

    # Fuzz seeds: whole archives, their pickles, and the archives again for the zip target.
    for d in ("pytorch", "pickle", "zip"):
        os.makedirs(os.path.join(SEEDS, d), exist_ok=True)
    for p in paths:
        name = os.path.splitext(os.path.basename(p))[0]
        data = open(p, "rb").read()
        for d in ("pytorch", "zip"):
            with open(os.path.join(SEEDS, d, name + ".pt"), "wb") as f:
                f.write(data)
        with zipfile.ZipFile(p) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
            with open(os.path.join(SEEDS, "pickle", name + ".pkl"), "wb") as f:
                f.write(z.read(pkl))


if __name__ == "__main__":
    main()
