#!/usr/bin/env python
"""INTR vs the FC baseline: train-step throughput, peak memory, the O(C²) scale, and evidence (issue #5).

The issue: "Train-step throughput ratio INTR / FC baseline on the same backbone at 10, 200 and
1000 classes; peak memory at 1000 classes; explanation mass inside the ground-truth mask on
the synthetic set next to FC+CAM and SCOUTER." and "decoder self-attention is O(C²): at 1000
classes measure it, and use the memory-efficient attention kernels torch provides."

**Throughput** (default mode). For every class count C of ``--classes`` the script builds, on
the same timm backbone (``--frozen-bn`` freezes BatchNorm in both, as INTR does; default off):

  fc    ``seethrough.create_model("fc", ...)``: backbone → GAP → Linear (+ its CAM maps);
  intr  ``seethrough.create_model("intr", ...)`` with ``--d-model`` (256), ``--nheads`` (8),
        ``--enc-layers`` / ``--dec-layers`` (6 / 6), ``--dim-feedforward`` (2048), ``--dropout``
        (0.1): INTR's defaults (Paul et al., ICLR 2024, official main.py); shrink them for CPU.

Design as ``scouter_throughput.py`` (the helpers are in ``_timing.py``): one backbone
initialization (seed 0; INTR copies FC's backbone weights, checked), **the same fixed
in-memory batch** (``B×3×H×W``, labels ``arange(B) % C``), one step = forward,
``compute_loss`` (cross-entropy for both), ``zero_grad``, backward, AdamW (lr 1e-4, decay
0.01). Interleaved rounds (class counts and models rotated, INTR and FC of one C back to
back); the ratio INTR/FC is the **median of the per-round ratios** over the rounds whose
blocks had cpu use >= ``--clean-cpu-use`` (all rounds when fewer than 3 are clean). Peak
memory at ``--memory-classes`` (default the largest C): each model in a fresh subprocess,
CPU peak RSS (VmHWM reset after the imports) and ``torch.cuda.max_memory_allocated`` on CUDA.

**Scale** (``--scale-classes``, default 200 1000; give none to skip): what grows with C in
INTR's head, on the backbone features of the same batch (computed once):

  - the head alone (``input_proj`` + transformer + presence vector + loss, forward and
    backward, no optimizer) against the whole step, median of ``--scale-repeats``
    interleaved timings; its autograd-saved tensors (MiB) and the stored explanation
    ``extras["attention"]`` (L·B·heads·C·h·w floats, linear in C);
  - one decoder self-attention (the O(C²) part: B·heads·C² scores per layer), forward +
    backward on B×C×d, as INTR calls it (``need_weights=False`` → ``scaled_dot_product_attention``)
    and, for contrast, with ``need_weights=True`` (the explicit path that materializes the
    C×C weights); time and saved MiB;
  - which attention kernels ran: a ``torch.profiler`` record of one head forward in training
    and one in eval, counting ``scaled_dot_product_attention`` calls by query length (C: the
    decoder self-attention, h·w: the encoder) and the kernel they dispatched to, and the
    explicit-path softmaxes (3-D ``(B·heads)×C×N``; over N = C there must be none);
  - the head's peak memory in a fresh process (head steps only, after the features).

(On CPU the fused SDPA kernel, ``_scaled_dot_product_flash_attention_for_cpu``, takes no
dropout: in training with INTR's attention dropout 0.1 SDPA falls back to the math kernel,
which keeps the B·heads·C² probabilities and dropout mask for backward; the ``sdpa-p0``
variant shows what the fused kernel saves. torch's CUDA flash / memory-efficient kernels take
dropout; not measured here.)

**Evidence** (``--evidence``, a separate mode): trains, on the synthetic data with the ``demo``
preset and exactly as ``seethrough demo`` does (``seethrough.demo.DEMO_MODELS``), FC (CAM),
SCOUTER+ (from FC's backbone) and the demo's small INTR (from FC's backbone, frozen BN), plus
``intr-scratch``: INTR from scratch at the CPU settings of tests/models/test_intr_learns.py
(d 32, 4 heads, 1+1 layers, FFN 64, BatchNorm trained, 3 epochs); then prints validation
top-1 and the share of each map's mass inside the ground-truth evidence mask
(``seethrough.demo.evidence_mass`` via ``score_and_render``) next to a uniform map's.

Examples (2 shared vCPUs; 6 min 12 s with INTR's full defaults, 1 thread; 2 min 25 s)::

    python benchmarks/intr_throughput.py --backbone resnet50 --img-size 224 --batch-size 4 \\
        --classes 10 200 1000 --steps 1 --warmup 1 --repeats 5 --memory-steps 1 \\
        --scale-classes 200 1000 --scale-repeats 3 --threads 1
    python benchmarks/intr_throughput.py --evidence
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import seethrough

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import (  # noqa: E402  (shared with the other side-by-side benchmarks)
    TrainStep,
    add_memory_args,
    add_model_args,
    add_report_args,
    add_timing_args,
    backbone_check,
    build_models,
    drop_values,
    finish_args,
    machine,
    make_batch,
    measure_train_steps,
    paired_ratio,
    print_memory_table,
    print_probe,
    print_throughput_table,
    probe_all,
    probe_train_memory,
    read_peak_memory,
    result_rows,
    rotated,
    run_probe,
    saved_tensor_mib,
    setup_torch,
    start_peak_memory,
    sync,
    timed,
    write_json,
)

REFERENCE, NAMES = "fc", ("fc", "intr")
#: The probe name of INTR's head alone (fresh-process peak memory of head steps).
HEAD_PROBE = "intr-head"
#: INTR's defaults (official main.py): hidden_dim, nheads, enc_layers, dec_layers, dim_feedforward, dropout.
D_MODEL, NHEADS, ENC_LAYERS, DEC_LAYERS, DIM_FEEDFORWARD, DROPOUT = 256, 8, 6, 6, 2048, 0.1
FLOAT_BYTES = 4
#: Evidence mode: the demo's models (seethrough.demo.DEMO_MODELS) in this order, when present.
EVIDENCE_DEMO_MODELS = ("fc", "scouter+", "intr")
#: ... and INTR from scratch at the CPU size of tests/models/test_intr_learns.py (no FC backbone,
#: so BatchNorm trains: frozen at init it would leave a random ResNet unnormalized), 3 epochs.
INTR_SCRATCH = {"overrides": {"model": "intr", "epochs": 3,
                              "model_options": {"d_model": 32, "nheads": 4, "num_encoder_layers": 1,
                                                "num_decoder_layers": 1, "dim_feedforward": 64, "dropout": 0.1,
                                                "frozen_bn": False}},
                "policy": "gt"}


# --------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p, classes=[10, 200, 1000])
    p.set_defaults(backbone="resnet50", batch_size=8)  # INTR's backbone
    p.add_argument("--frozen-bn", action="store_true",
                   help="frozen BatchNorm in BOTH models (INTR's default from DETR weights); default: trained BN")
    p.add_argument("--d-model", type=int, default=D_MODEL)
    p.add_argument("--nheads", type=int, default=NHEADS)
    p.add_argument("--enc-layers", type=int, default=ENC_LAYERS)
    p.add_argument("--dec-layers", type=int, default=DEC_LAYERS)
    p.add_argument("--dim-feedforward", type=int, default=DIM_FEEDFORWARD)
    p.add_argument("--dropout", type=float, default=DROPOUT)
    p.add_argument("--pre-norm", action="store_true")
    add_timing_args(p)
    p.set_defaults(repeats=5)
    add_memory_args(p)
    p.add_argument("--scale-classes", type=int, nargs="*", default=[200, 1000],
                   help="class counts of the scale analysis (none: skip)")
    p.add_argument("--scale-repeats", type=int, default=3, help="interleaved timings per scale measurement")
    p.add_argument("--evidence", action="store_true",
                   help="instead: train FC, SCOUTER+ and INTR on the synthetic data (demo preset) and score "
                        "their maps against the evidence masks")
    p.add_argument("--evidence-epochs", type=int, default=None,
                   help="--evidence: epochs of every model (default: the demo preset's; intr-scratch 3)")
    p.add_argument("--evidence-out", type=Path, default=None, help="--evidence: run folder (default: a temp dir)")
    add_report_args(p)
    args = finish_args(p, p.parse_args(argv))
    args.scale_classes = sorted(dict.fromkeys(args.scale_classes))
    return args


def describe(name: str, args: argparse.Namespace) -> str:
    bn = "frozen BN" if args.frozen_bn else "trained BN"
    if name == REFERENCE:
        return f"FC baseline (GAP → Linear, CAM), {bn}"
    return (f"INTR (d {args.d_model}, {args.nheads} heads, {args.enc_layers}+{args.dec_layers} layers, "
            f"FFN {args.dim_feedforward}, dropout {args.dropout}, {'pre' if args.pre_norm else 'post'}-norm), {bn}")


# --------------------------------------------------------------------------- models
def build(name: str, num_classes: int, args: argparse.Namespace, device: torch.device,
          backbone_state: dict | None = None) -> TrainStep:
    """FC or INTR at ``num_classes`` (seed 0), with its optimizer."""
    common = dict(num_classes=num_classes, backbone=args.backbone, output_stride=args.output_stride,
                  frozen_bn=args.frozen_bn)
    torch.manual_seed(0)
    if name == REFERENCE:
        model = seethrough.create_model("fc", **common)
    elif name == "intr":
        model = seethrough.create_model("intr", **common, d_model=args.d_model, nheads=args.nheads,
                                        num_encoder_layers=args.enc_layers, num_decoder_layers=args.dec_layers,
                                        dim_feedforward=args.dim_feedforward, dropout=args.dropout,
                                        pre_norm=args.pre_norm)
    else:
        raise ValueError(f"unknown model {name!r}; this script knows {', '.join(NAMES)}")
    return TrainStep(name, num_classes, model, device, precision=args.precision, backbone_state=backbone_state)


def intr_at(c: int, args, device, models: dict) -> TrainStep:
    """The INTR of the timing run at C, or a new one with the same backbone weights."""
    if (c, "intr") in models:
        return models[(c, "intr")]
    state = next(iter(models.values())).model.backbone.state_dict()
    return build("intr", c, args, device, backbone_state=state)


# --------------------------------------------------------------------------- scale
#: One decoder self-attention, three ways: as INTR calls it (need_weights=False → SDPA, with the
#: model's attention dropout), the same with dropout 0 (on CPU the only case SDPA's fused
#: flash kernel takes; CUDA's fused kernels take dropout too), and need_weights=True (the
#: explicit path that materializes and returns the C×C weights).
SELF_ATTENTION_VARIANTS = {
    "sdpa": "need_weights=False (as INTR), model dropout",
    "sdpa-p0": "need_weights=False, dropout 0",
    "explicit": "need_weights=True (C×C weights materialized)",
}


def self_attention_call(attn: torch.nn.MultiheadAttention, tgt: torch.Tensor, query_pos: torch.Tensor,
                        variant: str) -> torch.Tensor:
    """One decoder self-attention as the decoder layer calls it (q = k = z + Q, v = z)."""
    q = tgt + query_pos
    dropout = attn.dropout
    if variant == "sdpa-p0":
        attn.dropout = 0.0
    try:
        return attn(q, q, tgt, need_weights=variant == "explicit", average_attn_weights=False)[0]
    finally:
        attn.dropout = dropout


def self_attention_runner(attn, tgt, query_pos, variant: str):
    """n × (forward + backward) of :func:`self_attention_call`."""
    def run(n: int) -> None:
        for _ in range(n):
            self_attention_call(attn, tgt, query_pos, variant).sum().backward()
    return run


def sdpa_kernels(fn) -> dict[str, int]:
    """The scaled-dot-product kernels (forward and backward) that ``fn()`` ran, with counts."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts: dict[str, int] = {}
    for e in prof.events():
        if "scaled_dot_product" in e.name and e.name != "aten::scaled_dot_product_attention":
            counts[e.name] = counts.get(e.name, 0) + 1
    return counts


def attention_kernels(model, features: torch.Tensor, c: int, hw: int, train: bool) -> dict:
    """Profile one head forward; count SDPA calls by query length and the kernels they ran,
    and the explicit-path softmaxes (3-D (B·heads)×L×S) by key length."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if features.is_cuda else [])
    was_training = model.training
    model.train(train)
    try:
        with torch.set_grad_enabled(train), torch_profile(activities=activities, record_shapes=True) as prof:
            model.head_forward(features)
    finally:
        model.train(was_training)
    sdpa = {"decoder self-attention (query length C)": 0, "encoder self-attention (query length h·w)": 0}
    kernels: dict[str, int] = {}
    explicit = {"over C keys (self-attention, must be 0)": 0, "over h·w keys (cross-attention)": 0}
    for e in prof.events():
        shapes = [s for s in (e.input_shapes or []) if isinstance(s, (list, tuple))]
        if e.name == "aten::scaled_dot_product_attention" and shapes and len(shapes[0]) == 4:
            query_len = shapes[0][2]
            key = ("decoder self-attention (query length C)" if query_len == c else
                   "encoder self-attention (query length h·w)" if query_len == hw else f"query length {query_len}")
            sdpa[key] = sdpa.get(key, 0) + 1
        elif "scaled_dot_product" in e.name:
            kernels[e.name] = kernels.get(e.name, 0) + 1
        elif e.name == "aten::softmax" and shapes and len(shapes[0]) == 3:
            keys = shapes[0][2]
            if keys == c:
                explicit["over C keys (self-attention, must be 0)"] += 1
            elif keys == hw:
                explicit["over h·w keys (cross-attention)"] += 1
    return {"mode": "train" if train else "eval", "sdpa_calls": sdpa, "sdpa_kernels": kernels,
            "explicit_softmax_calls": explicit}


def scale(args, device, image, models, step_ms: dict[int, float]) -> dict:
    """What grows with C in INTR's head: time, saved tensors, stored attention, kernels.

    ``step_ms``: the whole train step's median ms per C from the main timing; a C without
    one gets its whole step timed here, interleaved with the head."""
    steps = {c: intr_at(c, args, device, models) for c in args.scale_classes}
    out = {c: {"classes": c} for c in args.scale_classes}
    runners, attn_runners, hw = {}, {}, None
    for c, m in steps.items():
        label = (torch.arange(args.batch_size) % c).to(device)
        runners[c] = m.head_runners(image, label)
        with torch.no_grad():
            features = m.model.backbone(image)
        hw = features.shape[-2] * features.shape[-1]
        # the head: saved tensors of forward + loss, and the stored explanation
        features.requires_grad_(True)

        def head_loss(m=m, features=features, label=label):
            output = m.model.head_forward(features)
            return output, m.model.compute_loss(output, label)["loss"]

        with m._ctx():
            saved, (output, _) = saved_tensor_mib(head_loss)
        attention = output.extras["attention"]
        out[c].update(head_saved_mib=saved, attention_shape=list(attention.shape),
                      attention_mib=attention.numel() * attention.element_size() / 2**20,
                      attention_formula_mib=(args.dec_layers * args.batch_size * args.nheads * c * hw
                                             * FLOAT_BYTES / 2**20),
                      self_attention_scores_per_layer_mib=args.batch_size * args.nheads * c * c * FLOAT_BYTES / 2**20)
        del output, attention
        # one decoder self-attention, need_weights False (SDPA, as INTR) vs True (explicit C×C weights)
        layer = m.model.transformer.decoder.layers[0].self_attn
        query_pos = m.model.query_embed.weight.detach().unsqueeze(0).expand(args.batch_size, -1, -1)
        tgt = torch.randn(args.batch_size, c, args.d_model, device=device, requires_grad=True)
        for v in SELF_ATTENTION_VARIANTS:
            attn_runners[(c, v)] = self_attention_runner(layer, tgt, query_pos, v)
            with m._ctx():
                mib, _ = saved_tensor_mib(lambda: self_attention_call(layer, tgt, query_pos, v))
                kernels = sdpa_kernels(lambda: attn_runners[(c, v)](1))
            out[c][f"self_attention_saved_mib_{v}"] = mib
            out[c][f"self_attention_kernels_{v}"] = kernels
        feats = features.detach()
        out[c]["kernels"] = [attention_kernels(m.model, feats, c, hw, train) for train in (True, False)]
    # timings, interleaved across class counts and variants
    head_s = {c: [] for c in steps}
    full_s = {c: [] for c in steps}
    attn_s = {k: [] for k in attn_runners}
    for c in steps:  # warm-up
        runners[c][0](1)
        for v in SELF_ATTENTION_VARIANTS:
            attn_runners[(c, v)](1)
    for r in range(args.scale_repeats):
        for c in rotated(args.scale_classes, r):
            head_s[c].append(timed(runners[c][0], 1, device)[0])
            if c not in step_ms:
                full_s[c].append(timed(runners[c][1], 1, device)[0])
            for v in rotated(list(SELF_ATTENTION_VARIANTS), r):
                attn_s[(c, v)].append(timed(attn_runners[(c, v)], 1, device)[0])
    for c in steps:
        whole = step_ms[c] if c in step_ms else 1e3 * statistics.median(full_s[c])
        head = 1e3 * statistics.median(head_s[c])
        out[c].update(head_ms=head, step_ms=whole, head_share=head / whole,
                      step_ms_source="main timing" if c in step_ms else "timed here",
                      **{f"self_attention_ms_{v}": 1e3 * statistics.median(attn_s[(c, v)])
                         for v in SELF_ATTENTION_VARIANTS},
                      head_ms_rounds=[1e3 * x for x in head_s[c]])
    return {"hw": hw, "per_class_count": {str(c): v for c, v in out.items()}}


def probe_head(args) -> None:
    """Fresh-process peak memory of INTR's head alone (``--probe C:intr-head``): head steps
    (forward, loss, backward; no optimizer) on precomputed backbone features."""
    c = int(args.probe.split(":", 1)[0])
    device = setup_torch(args)
    image, _ = make_batch(args, device)
    label = (torch.arange(args.batch_size) % c).to(device)
    m = build("intr", c, args, device)
    head_step, _ = m.head_runners(image, label)
    sync(device)
    reset, base = start_peak_memory(device)
    head_step(args.warmup + args.memory_steps)
    print_probe({"model": HEAD_PROBE, "classes": c, **read_peak_memory(device, reset, base),
                 "parameters": m.parameters()})


# --------------------------------------------------------------------------- evidence
def evidence(args) -> dict:
    """Train FC, SCOUTER+ and INTR on the synthetic data (demo preset) and score their maps."""
    from seethrough.config import resolve_config
    from seethrough.demo import DEMO_MODELS, score_and_render
    from seethrough.engine import train

    setup_torch(args)
    out = args.evidence_out or Path(tempfile.mkdtemp(prefix="intr-evidence-"))
    entries = {name: DEMO_MODELS[name] for name in EVIDENCE_DEMO_MODELS if name in DEMO_MODELS}
    entries["intr-scratch"] = INTR_SCRATCH
    rows = {}
    for name, entry in entries.items():
        run_dir = out / name
        overrides = {**entry["overrides"], "out": str(run_dir), "accelerator": args.device, "progress": False,
                     "use_pre": str(out / entry["use_pre"]) if "use_pre" in entry else None}
        if args.evidence_epochs is not None:
            overrides["epochs"] = args.evidence_epochs
        cfg = resolve_config(preset="demo", overrides=overrides)
        start = time.perf_counter()
        trained = train(cfg)
        seconds = time.perf_counter() - start
        scores = score_and_render(run_dir, run_dir, cfg.data_options, entry["policy"])
        rows[name] = {"epochs": cfg.epochs, "model": cfg.model, "model_options": cfg.model_options,
                      "use_pre": entry.get("use_pre"), "val_acc1": trained["val_acc1"],
                      "best_val_acc1": trained["best_val_acc1"], "train_seconds": seconds,
                      "from_demo_models": name in EVIDENCE_DEMO_MODELS, **scores}
    data = resolve_config(preset="demo").data_options
    return {"mode": "evidence", "out": str(out), "data_options": data, "models": rows}


def print_evidence(summary: dict) -> None:
    print(f"\nsynthetic data, demo preset (data options {summary['data_options'] or 'preset defaults'}); runs in "
          f"{summary['out']}")
    print(f"{'model':<12} {'epochs':>6} {'val top-1':>9} {'best':>6} {'explained':>9} {'mass':>6} {'uniform':>7} "
          f"{'mass/unif':>9} {'train s':>8}")
    for name, r in summary["models"].items():
        print(f"{name:<12} {r['epochs']:>6} {r['val_acc1']:>9.3f} {r['best_val_acc1']:>6.3f} "
              f"{r['explained_class']:>9} {r['evidence_mass']:>6.3f} {r['evidence_mass_uniform']:>7.3f} "
              f"{r['evidence_mass'] / r['evidence_mass_uniform']:>9.2f} {r['train_seconds']:>8.1f}")
    for name, r in summary["models"].items():
        source = "seethrough.demo.DEMO_MODELS" if r["from_demo_models"] else "this script's INTR_SCRATCH"
        extra = f", backbone from {r['use_pre']}" if r["use_pre"] else ""
        print(f"  {name}: {r['model']} {r['model_options'] or ''} ({source}{extra})")
    print("  mass = Σ map inside the ground-truth evidence mask / Σ map (per-class normalized maps, "
          "mean over the scored validation images); uniform = the mask's share of the image")


# --------------------------------------------------------------------------- report
def summarize(args, per_round, cpu_use, models, mem, info, check) -> dict:
    rows = result_rows(per_round, cpu_use, models, mem, lambda name: describe(name, args))
    ratios = {f"{c}:intr": {"classes": c, "model": "intr",
                            **paired_ratio(per_round, cpu_use, (c, "intr"), (c, REFERENCE), repeats=args.repeats,
                                           clean_cpu_use=args.clean_cpu_use, on_cpu=args.device == "cpu")}
              for c in args.classes}
    config = {k: v for k, v in vars(args).items() if k not in ("json", "probe", "evidence_out")}
    return {"config": config, "machine": info, "backbone_check": check, "results": rows, "ratios": ratios}


def print_scale(sc: dict, head_mem: dict, args) -> None:
    per = sc["per_class_count"]
    cs = list(per)
    print(f"\nscale of INTR's head (h·w = {sc['hw']}, batch {args.batch_size}, {args.nheads} heads, "
          f"{args.dec_layers} decoder layers); times: median of {args.scale_repeats} interleaved")
    rows = [
        ("head alone fwd+bwd, ms", "head_ms", ".1f"), ("whole train step, ms (*)", "step_ms", ".1f"),
        ("head share of the step", "head_share", ".3f"),
        ("head: autograd-saved MiB", "head_saved_mib", ".1f"),
        ("extras['attention'] MiB", "attention_mib", ".1f"),
        ("  formula L·B·heads·C·hw·4 B", "attention_formula_mib", ".1f"),
        ("self-attn scores B·heads·C²·4 B / layer", "self_attention_scores_per_layer_mib", ".1f"),
    ]
    for what, key, fmt in (("fwd+bwd ms", "self_attention_ms_", ".2f"),
                           ("saved MiB", "self_attention_saved_mib_", ".1f")):
        rows += [(f"1 dec self-attn {what}, {v}", key + v, fmt) for v in SELF_ATTENTION_VARIANTS]
    print(f"{'':<42}" + "".join(f" {'C=' + c:>10}" for c in cs) + (f" {'ratio':>8}" if len(cs) == 2 else ""))
    for label, key, fmt in rows:
        vals = [per[c][key] for c in cs]
        line = f"{label:<42}" + "".join(f" {v:>10{fmt}}" for v in vals)
        if len(cs) == 2 and vals[0]:
            line += f" {vals[1] / vals[0]:>8.2f}"
        print(line)
    print("  (*) " + ", ".join(f"C={c}: {per[c]['step_ms_source']}" for c in cs)
          + "; head share = head alone / whole step")
    for c, mm in head_mem.items():
        peak = mm.get("cuda_max_allocated_mib", mm["over_baseline_mib"])
        what = "cuda max allocated" if "cuda_max_allocated_mib" in mm else "peak RSS over the RSS before the steps"
        print(f"  head alone, fresh process, C={c}: {what} {peak:.0f} MiB")
    for v, text in SELF_ATTENTION_VARIANTS.items():
        kernels = {c: per[c][f"self_attention_kernels_{v}"] for c in cs}
        print(f"  {v}: {text}; kernels (fwd+bwd) {kernels}")
    print("attention kernels (torch.profiler, one head forward):")
    for c in cs:
        for k in per[c]["kernels"]:
            print(f"  C={c} {k['mode']:<5} SDPA calls {k['sdpa_calls']}; kernels {k['sdpa_kernels']}; "
                  f"explicit softmax {k['explicit_softmax_calls']}")


def print_report(summary: dict) -> None:
    c, m = summary["config"], summary["machine"]
    print(f"\n{c['backbone']} {c['img_size']}px batch {c['batch_size']}, output stride {c['output_stride']}, "
          f"{c['device']} {c['precision']}, {m['torch_threads']} threads; {c['steps']} steps x {c['repeats']} "
          f"interleaved rounds (+{c['warmup']} warm-up); same in-memory batch, no data loading; AdamW")
    print(f"same backbone weights in every model: {summary['backbone_check']}")
    ns = argparse.Namespace(**c)
    for name in NAMES:
        print(f"  {name:<12} {describe(name, ns)}")
    print_throughput_table(summary, NAMES)
    print_memory_table(summary)
    if "scale" in summary:
        print_scale(summary["scale"], summary.get("head_memory", {}), ns)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.probe:
        (probe_head if args.probe.endswith(":" + HEAD_PROBE) else lambda a: probe_train_memory(a, build))(args)
        return 0
    if args.evidence:
        summary = {**evidence(args), "machine": machine()}
        print_evidence(summary)
        write_json(args.json, summary)
        return 0
    device = setup_torch(args)
    info = machine()
    image, labels = make_batch(args, device)
    models = build_models(args, device, NAMES, build)
    check = backbone_check(models)
    per_round, cpu_use = measure_train_steps(args, device, image, labels, models, NAMES)
    probe_argv = drop_values(argv, ("--json",))
    mem = probe_all(__file__, args, probe_argv, NAMES) if args.memory_classes else {}
    summary = summarize(args, per_round, cpu_use, models, mem, info, check)
    if args.scale_classes:
        step_ms = {c: 1e3 * args.batch_size / summary["results"][f"{c}:intr"]["images_per_s_median"]
                   for c in args.classes}
        summary["scale"] = scale(args, device, image, models, step_ms)
        del models
        summary["head_memory"] = {c: r for c in args.scale_classes
                                  if (r := run_probe(__file__, probe_argv, f"{c}:{HEAD_PROBE}")) is not None}
    print_report(summary)
    write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
