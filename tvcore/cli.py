"""The ``tvcore`` command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .errors import TaskVectorMismatchError, TvcoreError, UsageError
from .outputs import check_output, check_output_dir


def _data_summary(args) -> int:
    from tabulate import tabulate

    from . import data

    if args.root is None and data.needs_root(args.name):
        raise UsageError(f"data summary {args.name}: pass --root DIR, the folder that holds the datasets "
                         "(or set TVCORE_DATA)")
    if args.name not in ("mini-ddsm", "digits"):
        return _paper_summary(args)
    options = {}
    if args.name == "mini-ddsm":
        options = {"protocol": args.protocol, "label": args.label, "seed": args.seed}
    task = data.load(args.name, root=args.root, **options)
    cases = task.check_no_case_leak()
    rows = []
    for split_name, split in task.splits.items():
        counts = split.class_counts(task.num_classes)
        rows.append([split_name, len(split), cases[split_name], *counts])
    print(f"{task.name}: {task.num_classes} classes" + (f"; labels: {task.notes}" if task.notes else ""))
    print(tabulate(rows, headers=["split", "images", "cases", *task.class_names], tablefmt="github"))
    print(f"leak check: passed, no case is in two splits ({sum(cases.values())} cases)")
    return 0


def _paper_summary(args) -> int:
    """Per task: the reader that found it, images per split and the split and prompt
    fingerprints, so two users see at once whether they hold the same data."""
    from tabulate import tabulate

    from . import data

    info = data.summary(args.name, args.root)
    rows, errors = [], []
    for task, d in info.items():
        if "error" in d:
            # Dataset errors name their task first; the rest get it added.
            errors.append(d["error"] if d["error"].startswith(task) else f"{task}: {d['error']}")
            continue
        images, prints = d["images"], d["fingerprints"]
        rows.append([task, d["reader"], d["classes"],
                     *(images.get(s, "-") for s in ("train", "val", "test")),
                     *(prints[s][:12] if s in prints else "-" for s in ("val", "test")), d["prompt_fingerprint"][:12]])
    if rows:
        print(tabulate(rows, headers=["task", "reader", "classes", "train", "val", "test", "val sha256",
                                      "test sha256", "prompts sha256"], tablefmt="github"))
    for line in errors:
        print(f"error: {line}")
    if errors and not rows:
        raise UsageError(f"no task is readable under {args.root} ({', '.join(info)}); see the error lines above")
    return 1 if errors else 0


def _cache(args) -> int:
    """The pixel cache folder: list its entries, give its size, clear it (see data.cache_store)."""
    from tabulate import tabulate

    from .data import cache_store as store
    from .data.cache import _default_root

    root = _default_root()
    if args.cache_command == "list":
        rows = [[e.key, store.human(e.bytes), store.when(e.last_used), e.split, e.images]
                for e in reversed(store.entries(root))]
        print(tabulate(rows, headers=["key", "size", "last used", "split", "images"], tablefmt="github")
              if rows else f"no entries under {root}")
    elif args.cache_command == "size":
        found, bound = store.entries(root), store.max_bytes()
        print(f"{root}: {len(found)} entries, {store.human(store.folder_bytes(root))} of a "
              f"{store.human(bound) if bound != float('inf') else 'unbounded'} bound ({store.MAX_ENV})")
    else:
        removed, busy = store.clear(root, args.keys or None)
        print(f"removed {len(removed)} entries ({store.human(sum(e.bytes for e in removed))}) from {root}"
              + (f"; kept {len(busy)} in use: {', '.join(e.key for e in busy)}" if busy else ""))
    return 0


def _vector_build(args) -> int:
    from pathlib import Path

    from .vectors import TaskVector

    check_output(args.output, inputs=[args.pretrained, args.finetuned])
    if args.arch:
        # Published forms (pickled encoders, Hugging Face folders, OpenCLIP files):
        # both sides read as the architecture's image encoder.
        from .importers import read_image_encoder
        from .models import decide_quick_gelu, quiet_openclip

        with quiet_openclip():
            pre, pre_info = read_image_encoder(args.pretrained, args.arch)
            ft, ft_info = read_image_encoder(args.finetuned, args.arch)
        # Both sides must come from one model: a QuickGELU clash between them is refused.
        decide_quick_gelu(args.arch, records={args.pretrained: pre_info.get("quick_gelu"),
                                              args.finetuned: ft_info.get("quick_gelu")}, weights_given=False)
        tv = TaskVector.from_state_dicts(pre, ft, name=args.name or Path(args.finetuned).stem,
                                         base_model=args.base_model or args.arch)
    else:
        from .checkpoints import load_state_dict

        try:
            tv = TaskVector.from_checkpoints(args.pretrained, args.finetuned, name=args.name,
                                             base_model=args.base_model)
        except TaskVectorMismatchError:
            # Files of two layouts get the message that names them and --arch.
            check_same_keys(load_state_dict(args.pretrained), load_state_dict(args.finetuned), args.pretrained,
                            args.finetuned)
            raise
    tv.save(args.output)
    print(f"wrote {args.output}: {tv!r}, norm {tv.norm():.6g}"
          + (f"; excluded non-float buffers: {', '.join(sorted(tv.excluded_keys))}" if tv.excluded_keys else ""))
    return 0


def check_same_keys(pre, ft, pre_path: str, ft_path: str) -> None:
    """Two weights files of different layouts (a whole CLIP model and an image
    encoder, say) refused in one line that says how many tensors each holds, shows
    a couple of the keys only one has, and names the flag that reads both as one
    architecture's image encoder (--arch)."""
    if pre.keys() == ft.keys():
        return

    def side(path, state, other) -> str:
        # Keys that differ only by the whole model's 'visual.' prefix first: they show the mismatch.
        only = sorted(state.keys() - other.keys(),
                      key=lambda k: (f"visual.{k}" not in other and k.removeprefix("visual.") not in other, k))
        kind = ("a whole CLIP model" if "visual.conv1.weight" in state
                else "an image encoder" if "conv1.weight" in state else "")
        shown = ", ".join(repr(k) for k in only[:2]) + (f" and {len(only) - 2} more" if len(only) > 2 else "")
        return (f"{path} holds {len(state)} tensors{f' ({kind})' if kind else ''}"
                + (f", {len(only)} not in the other (e.g. {shown})" if only else ""))

    raise TaskVectorMismatchError(f"the two files hold different keys: {side(pre_path, pre, ft)}; "
                                  f"{side(ft_path, ft, pre)}; pass --arch ARCH (e.g. --arch ViT-B-32) to read "
                                  "both as that architecture's image encoder")


def _vector_apply(args) -> int:
    from .checkpoints import load_state_dict, save_state_dict
    from .vectors import TaskVector, covers_encoder_of_whole_model

    check_output(args.output, inputs=[args.base, *args.vectors])
    base = load_state_dict(args.base)
    vectors = [TaskVector.load(p) for p in args.vectors]
    total = sum(vectors)
    if not args.partial and covers_encoder_of_whole_model(total.keys(), base):
        raise UsageError(f"{' + '.join(args.vectors)} covers the image encoder only ({len(total)} tensors) and "
                         f"{args.base} is a whole CLIP model; pass --partial to edit its image encoder (visual.*) "
                         "and keep the text tower")
    out = total.apply_to(base, args.alpha, inplace=True, strict=not args.partial)
    save_state_dict(out, args.output)
    print(f"wrote {args.output}: base + {args.alpha:g} * ({' + '.join(v.name or p for v, p in zip(vectors, args.vectors))})")
    return 0


def _vector_merge(args) -> int:
    from .merging import MergeSpec, merge_files

    check_output(args.output, inputs=[*args.vectors, args.base, *(args.stats or [])])
    _check_merge_options(args)
    if args.method not in GENERAL_MERGES:
        return _registered_merge(args)
    consensus = "sign" if args.method in ("ties", "dare-ties") else "none"
    spec = MergeSpec(weights=tuple(args.weights) if args.weights else None, lam=args.lam,
                     trim=args.density if args.method in ("ties", "dare-ties") else None,
                     drop=args.drop if args.method in ("dare", "dare-ties") else 0.0,
                     consensus=consensus, seed=args.seed, trim_scope=args.trim_scope)
    stats = merge_files(args.vectors, args.output, spec, base=args.base)
    kind = "weights" if args.base else "task vector"
    print(f"wrote {args.output} ({kind}): {spec.name} of {len(args.vectors)} files, {stats.tensors} tensors, "
          f"{stats.bytes_read / 2**20:.1f} MiB read one tensor at a time")
    return 0


# Settings of the general method (MergeSpec), kept on their own flags; every other
# registered method takes --lam, --weights and --hp NAME=VALUE.
GENERAL_MERGES = ("task-arithmetic", "ties", "dare", "dare-ties")


def _registered_merge(args) -> int:
    """Any other registered method, streamed through its registry entry."""
    import ast

    from .merging import method_named, read_statistics

    method = method_named(args.method)
    hp = {}
    for item in args.hp or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--hp {item}: write NAME=VALUE, e.g. --hp common=0.8")
        try:
            hp[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            hp[name] = value
    if "lam" in method.defaults:
        hp.setdefault("lam", args.lam)
    if args.weights is not None:
        if "weights" not in method.defaults:
            raise UsageError(f"--weights: {method.name} takes no per-vector weights; leave --weights out")
        hp["weights"] = tuple(args.weights)
    stats = [read_statistics(p) for p in args.stats] if args.stats else None
    result = method.stream(args.vectors, args.output, stats=stats, base=args.base, **hp)
    kind = "weights" if args.base else "task vector"
    how = "one tensor at a time" if method.streams else "whole vectors in memory"
    print(f"wrote {args.output} ({kind}): {method.name} of {len(args.vectors)} files, {result.tensors} tensors, "
          f"{result.bytes_read / 2**20:.1f} MiB read {how}")
    return 0


def _check_merge_options(args) -> None:
    """The merge options a user can get wrong, refused before any file is read."""
    from .merging import METHODS

    if args.method not in METHODS:
        raise UsageError(f"--method {args.method}: unknown merging method; known: {', '.join(METHODS)}")
    if args.method in GENERAL_MERGES and (args.hp or args.stats):
        raise UsageError(f"--hp/--stats: {args.method} takes --lam, --weights, --density, --drop, --seed and "
                         "--trim-scope")
    ties = args.method in ("ties", "dare-ties")
    dare = args.method in ("dare", "dare-ties")
    if args.weights is not None and len(args.weights) != len(args.vectors):
        raise UsageError(f"--weights: {len(args.weights)} weights for {len(args.vectors)} vector files; "
                         "give one weight per file")
    if ties and not 0 < args.density <= 1:
        raise UsageError(f"--density {args.density:g}: the fraction of entries kept must lie in (0, 1]")
    if dare and not 0 <= args.drop < 1:
        raise UsageError(f"--drop {args.drop:g}: the drop probability must lie in [0, 1)")
    if ties and args.weights is not None and any(w <= 0 for w in args.weights):
        raise UsageError(f"--weights {' '.join(f'{w:g}' for w in args.weights)}: {args.method} elects signs "
                         "and needs positive weights")


def check_device(device: str) -> str:
    """A device the suites can run on here, or a :class:`UsageError` saying why not."""
    import torch

    kind = device.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine "
                         f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu")
    if kind not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {device}: not a device; use cpu or cuda (cuda:N)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return device


def start_device_in_background(device: str) -> None:
    """Start CUDA for ``device`` (the driver, its context and allocator: the part of a
    GPU process's start that is not Python's imports) on a background thread, once a
    command's inputs are checked, while OpenCLIP imports and the model is built on
    the CPU; the first move to the device waits for what is not done yet (torch's
    lazy initialization holds a lock). Nothing for another device. An error is left
    for the command's own first use of the device to raise. Not a daemon thread:
    the process does not exit halfway through starting the driver.
    ``TVCORE_DEVICE_START=first-use`` leaves the start to the first use (what the
    GPU bench compares it with)."""
    import threading

    when = os.environ.get("TVCORE_DEVICE_START", "background")
    if when not in ("background", "first-use"):
        raise UsageError(f"TVCORE_DEVICE_START={when}: use background (the default) or first-use")
    if device.split(":", 1)[0] != "cuda" or when == "first-use":
        return

    def start():
        import torch

        try:
            torch.zeros(1, device=device)
        except Exception:  # noqa: BLE001 - the command's own first use says what is wrong
            pass

    threading.Thread(target=start, name="tvcore-device-start").start()


def check_run_options(workers: int | None, pool: str | None, finetuned: str | None,
                      data_root: str | None = None, jobs: int = 1) -> None:
    """Options shared by ``tvcore run`` and the pytest plugin, checked before a suite starts."""
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: give 1 or more fine-tunes at once")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers {workers}: must be 0 (load in the main process) or more, or left out "
                         "for automatic")
    if pool is not None:
        check_output_dir(pool, "--pool folder")
    if finetuned is not None and not os.path.isdir(finetuned):
        what = "is a file, not a folder" if os.path.exists(finetuned) else "does not exist"
        raise UsageError(f"--finetuned {finetuned} {what}; give the folder of fine-tuned checkpoints")
    if data_root is not None and os.path.exists(data_root) and not os.path.isdir(data_root):
        raise UsageError(f"--data-root {data_root} is a file, not a folder; give the folder that holds "
                         "the datasets")


def context_options(workers: int | None, pool: str | None, fresh: bool, finetuned: str | None) -> dict:
    """The keyword arguments of :func:`tvcore.experiments.context_for` for these
    options; left-out options are not passed, so the experiments' defaults hold."""
    given = {"workers": workers, "pool": pool, "fresh": fresh, "finetuned": finetuned}
    return {k: v for k, v in given.items() if v is not None and v is not False}


def merging_subset(suite, methods: str):
    """``suite`` running only the comma-separated merging ``methods``, under its own
    record name (``<suite>-<m1>+<m2>``), so the full run's record is never replaced."""
    from dataclasses import replace

    from .experiments import MergingConfig

    if not isinstance(suite.config, MergingConfig):
        raise UsageError(f"--methods chooses merging methods; {suite.name} is not a merging suite "
                         "(merging-micro, merging-vit-b-32)")
    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise UsageError(f"--methods {methods!r}: give method names separated by commas, e.g. ties,tsv-m")
    config = suite.config.only(names)
    return replace(suite, name=f"{suite.name}-{'+'.join(config.methods)}", config=config)


def _run(args) -> int:
    from . import report
    from .experiments import SUITES, context_for, run_and_record

    if args.suite not in SUITES:
        raise UsageError(f"unknown suite {args.suite!r}; choose one of {', '.join(sorted(SUITES))}")
    if args.update_baselines:
        raise UsageError("--update-baselines: tvcore run never writes baselines; write them with pytest, which "
                         "pools the seeds: pytest bench/ --update-baselines --seeds 10")
    device = run_device(args)
    check_run_options(args.workers, args.pool, args.finetuned, args.data_root, args.jobs)
    if args.weights is not None and os.path.isdir(args.weights):
        raise UsageError(f"--weights {args.weights} is a directory; give the weights file inside it")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds {args.seeds}: must be at least 1")
    if args.seeds is not None and args.seed != 0:
        raise UsageError(f"--seed {args.seed} and --seeds {args.seeds}: --seeds N runs seeds 0..N-1; give one "
                         "of the two")
    seeds = list(range(args.seeds)) if args.seeds is not None else [args.seed]
    suite = SUITES[args.suite]
    if args.methods:
        suite = merging_subset(suite, args.methods)
    if args.rehearsal:
        suite = suite.rehearsal()  # its name ends in -rehearsal: never the real run's record
    baseline = (None if args.no_gate or args.plan or args.methods
                else baseline_for(args.suite, args.baselines_dir, args.rehearsal))
    # Every file the run will write is checked now, not after the suite has run for an hour.
    check_output_dir(args.results_dir, "--results-dir")
    cases = {seed: case_name(suite.name, seed) for seed in seeds}
    for case in cases.values():
        for suffix in (".json", ".png"):
            check_output(os.path.join(args.results_dir, case + suffix), what="result file")
    start_device_in_background(device)  # the inputs are checked
    if not args.plan:
        report.import_plotting_in_background()  # each record's plot is drawn at its run's end
    failed, runs = 0, []
    for seed, case in cases.items():
        options = dict(device=device, data_root=args.data_root, weights=args.weights, progress=not args.quiet,
                       seed=seed, results_dir=args.results_dir, rehearsal=args.rehearsal, quick_gelu=args.quick_gelu,
                       **context_options(args.workers, args.pool, args.fresh, args.finetuned))
        ctx = context_for(suite, **options)
        ctx.evaluator.set_precision(args.precision)
        if args.plan:
            from .parallel import plan_devices
            from .plan import plan_suite

            print(plan_suite(suite, ctx, plan_devices(device, args.jobs)).render())
            return 0
        if args.jobs > 1:
            from .parallel import train_entries

            train_entries(suite, options, jobs=args.jobs, ctx=ctx)  # workers build their contexts from options
        record, path = run_and_record(suite, ctx, case, args.results_dir, seed)
        print(report.render(record))
        print(quick_gelu_line(record))
        print(f"record: {path}\nplot: {path.with_suffix('.png')}")
        if baseline is not None:
            failed += not gate_record(record, baseline, args.accept_improvements)
        runs.append((record, path))
    # A real suite is judged against the published figures.
    outcomes = [judge_real_run(runs)] if suite.model is None and not args.rehearsal and runs else []
    if baseline is None and not args.plan:
        why = ("skipped (--no-gate)" if args.no_gate else "skipped (--methods runs a subset of the suite's methods)"
               if args.methods else gate_skipped(args.suite, args.rehearsal))
        print(f"gate: {why}")
    return 1 if failed else verdict_exit(outcomes)


def case_name(suite: str, seed: int) -> str:
    """A run's record name: the suite's, with the seed after it for seeds other than
    0 (the pytest plugin's names, so both write the same files)."""
    return suite if seed == 0 else f"{suite}-seed{seed}"


def run_device(args) -> str:
    """The device of ``tvcore run``: --device, or cuda with --gpu (the pytest
    plugin's flag); cpu by default, saying on stderr when a GPU sits unused."""
    if args.gpu and args.device not in (None, "cuda"):
        raise UsageError(f"--gpu and --device {args.device}: --gpu is --device cuda; give one of the two")
    device = check_device("cuda" if args.gpu else args.device or "cpu")
    if args.device is None and not args.gpu:
        import torch

        if torch.cuda.is_available():
            print("tvcore: CUDA is available but this run uses the CPU; pass --gpu (or --device cuda) to use it",
                  file=sys.stderr)
    return device


def baseline_for(suite: str, folder: str | None, rehearsal: bool = False):
    """The path of ``suite``'s baseline: ``<folder>/<suite>.json`` with --baselines-dir,
    else the first ``baselines/<suite>.json`` found from the current folder upwards;
    None when there is none, or for a rehearsal (its numbers mean nothing) or a
    suite outside the gated family (:data:`tvcore.experiments.GATED_SUITES`)."""
    from pathlib import Path

    from .experiments import GATED_SUITES

    if folder is not None:
        path = Path(folder) / f"{suite}.json"
        if not path.is_file():
            raise UsageError(f"--baselines-dir {folder}: no {suite}.json there; give the folder of the baseline "
                             "files, or --no-gate")
    else:
        here = Path.cwd()
        path = next((d / "baselines" / f"{suite}.json" for d in (here, *here.parents)
                     if (d / "baselines" / f"{suite}.json").is_file()), None)
    if path is None or rehearsal or suite not in GATED_SUITES:
        return None
    return path


def gate_skipped(suite: str, rehearsal: bool) -> str:
    from .experiments import GATED_SUITES

    if rehearsal:
        return "skipped (a rehearsal's numbers mean nothing)"
    if suite not in GATED_SUITES:
        return f"skipped ({suite} is not a gated suite)"
    return f"no baseline (no baselines/{suite}.json from here up; --baselines-dir DIR names the folder)"


def gate_record(record: dict, path, accept_improvements: bool = False) -> bool:
    """Judge a run's record against its suite's baseline with the gate the pytest
    plugin uses (tvcore.gate over the gated family); print the findings and return
    whether the record passes."""
    from tabulate import tabulate

    from . import results
    from .experiments import GATED_SUITES

    findings = results.gate(record, results.read_baseline(path), suites=len(GATED_SUITES))
    bad = results.failures(findings, accept_improvements=accept_improvements)
    fmt = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
    rows = [[f.metric, f.role, fmt(f.baseline), fmt(f.measured), fmt(f.tolerance),
             f"{f.status}{' FAIL' if f in bad else ''}"] for f in findings if f.status != "new"]
    print(tabulate(rows, headers=["metric", "role", "baseline %", "measured %", "tolerance", "status"],
                   tablefmt="github"))
    case = record.get("case", "record")
    if bad:
        print(f"gate: {case} FAILED against {path}: {len(bad)} metric(s) beyond tolerance")
        for finding in bad:
            print(f"  {finding.message()}")
        return False
    print(f"gate: {case} passed against {path}")
    return True


def quick_gelu_line(record: dict) -> str:
    """The model's QuickGELU decision and what decided it, as a run prints it."""
    decided = (record.get("context") or {}).get("model", {}).get("quick_gelu") or {}
    return f"QuickGELU {'on' if decided.get('value') else 'off'}: {decided.get('source', 'unknown')}"


def _import(args) -> int:
    import json

    from .importers import import_checkpoint
    from .models import quiet_openclip

    check_output(args.output, inputs=[args.source, *([args.base] if args.base else [])])
    with quiet_openclip():
        record = import_checkpoint(args.source, args.output, arch=args.arch, base=args.base,
                                   quick_gelu=args.quick_gelu, check_base=args.check_base, base_atol=args.base_atol)
    if args.record:
        from .results import write_json

        write_json(record, args.record)
    activation = {True: "on", False: "off"}.get(record.get("quick_gelu"),
                                                 "not recorded (--quick-gelu or --no-quick-gelu records it)")
    print(f"wrote {args.output}: {record.get('kind')} -> {args.arch} image encoder, {record.get('keys')} tensors; "
          f"QuickGELU {activation}" + (f"; provenance: {args.record}" if args.record else ""))
    if args.verbose:
        print(json.dumps(record, indent=2, sort_keys=True, default=str))
    return 0


def _eval(args) -> int:
    from . import report
    from .experiments import Suite, context_for, run_and_record
    from .experiments.common import ModelSpec
    from .experiments.evaluation import EvalConfig
    from .finetune import Recipe

    check_device(args.device)
    check_run_options(args.workers, None, None, args.data_root)
    case = args.name or eval_case(args)
    check_output_dir(args.results_dir, "--results-dir")
    for suffix in (".json", ".png"):
        check_output(os.path.join(args.results_dir, case + suffix), what="result file")
    quick_gelu = embedded_quick_gelu(args.weights, args.quick_gelu, args.image_encoder)
    spec = ModelSpec(args.arch, args.weights, quick_gelu=quick_gelu, image_encoder=args.image_encoder)
    suite = Suite(case, "eval", EvalConfig(args.task, args.split, args.vector, args.alpha), spec, Recipe())
    start_device_in_background(args.device)  # the inputs are checked
    report.import_plotting_in_background()  # the record's plot is drawn at the end
    ctx = context_for(suite, device=args.device, data_root=args.data_root, progress=not args.quiet,
                      **context_options(args.workers, None, False, None))
    ctx.evaluator.set_precision(args.precision)
    record, path = run_and_record(suite, ctx, case, args.results_dir)
    print(report.render(record))
    print(quick_gelu_line(record))
    print(f"record: {path}")
    return 0


def embedded_quick_gelu(weights: str | None, flag: bool | None, image_encoder: str | None = None) -> bool | None:
    """The user's --quick-gelu/--no-quick-gelu, or for the embedded checkpoint (which
    records no activation) what the suites run it with: it was pretrained with plain
    GELU (fixtures/pretrain_tiny.py builds it with OpenCLIP's default), so it is no
    case for the 'nothing records QuickGELU' warning. An --image-encoder file that
    records its activation decides instead."""
    from .experiments.common import TINY
    from .models import recorded_quick_gelu

    embedded = bool(weights) and os.path.isfile(weights) and os.path.samefile(weights, TINY.pretrained)
    told = bool(image_encoder) and os.path.isfile(image_encoder) and recorded_quick_gelu(image_encoder) is not None
    return TINY.quick_gelu if flag is None and embedded and not told else flag


def eval_case(args) -> str:
    """``tvcore eval``'s record name: ``eval-<task>-<split>-<model>``, the model named by
    the stems of its files (weights or tag, image encoder, vector with its alpha) and a
    short hash of their full paths and alpha, so that two different models never
    write the same record (a fine-tune's record never replaces the zero-shot one)."""
    import hashlib
    import re
    from pathlib import Path

    def stem(value: str | None) -> str | None:
        return None if value is None else re.sub(r"[^A-Za-z0-9._+-]+", "_", Path(value).stem or value)

    def full(value: str | None) -> str:
        return "" if value is None else str(Path(value).resolve()) if os.path.exists(value) else value

    parts = [stem(args.weights) or "no-weights", stem(args.image_encoder),
             f"{stem(args.vector)}-alpha{args.alpha:g}" if args.vector else None]
    identity = "\0".join([args.arch, full(args.weights), full(args.image_encoder), full(args.vector),
                           repr(args.alpha) if args.vector else ""])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return "-".join(["eval", args.task.replace("/", "-"), args.split, *(p for p in parts if p), digest])


def judge_record(record: dict, path, write: bool) -> str:
    """Print the record's verdict against the published figures
    (:func:`tvcore.verdicts.verdict_for`), write it beside the record as
    ``<case>.verdict.json`` when asked, and return its outcome."""
    from pathlib import Path

    from . import results, verdicts

    verdict = verdicts.verdict_for(record)
    print(f"{path}:\n{verdict.format()}\n")
    if write:
        out = Path(path).with_name(f"{record.get('case') or Path(path).stem}.verdict.json")
        results.write_json(verdict.as_dict(), out)
        print(f"verdict: {out}")
    return verdict.outcome


def judge_real_run(runs: list) -> str:
    """The verdict of a real suite's run, as pytest gives it: the first seed's
    record, with --seeds N (N >= 2) carrying the seeds' measured training spread
    (``seed_spread``, written into that record), which the checks then use instead
    of the assumed one."""
    from .records import seed_spread, write_json

    record, path = runs[0]
    if len(runs) >= 2:
        record["seed_spread"] = seed_spread([r for r, _ in runs])
        write_json(record, path)
    return judge_record(record, path, write=True)


def verdict_exit(outcomes) -> int:
    """0 when every outcome is reproduced, 1 when any is contradicted, 3 when none
    is but some cannot be decided (never a silent pass)."""
    from . import verdicts

    if verdicts.CONTRADICTED in outcomes:
        return 1
    return 3 if verdicts.INCONCLUSIVE in outcomes else 0


def _verdict(args) -> int:
    """Judge each record against the published figures under this tvcore's rules."""
    from . import results

    return verdict_exit([judge_record(results.read_record(path), path, args.write) for path in args.records])


def _compare(args) -> int:
    """Exit 0 when every metric agrees, 1 when any differs, 3 when none differs but
    some cannot be decided on these test sets (never a silent pass)."""
    from tabulate import tabulate

    from . import compare, protocol, results

    a, b = results.read_record(args.a), results.read_record(args.b)
    rows = compare.compare_records(a, b, allow_different_data=args.allow_different_data, names=(args.a, args.b),
                                   margin=args.margin / 100)
    def pts(v, sign=""):
        return "-" if v is None else f"{100 * v:{sign}.2f}"

    table = [[r.metric, pts(r.a), pts(r.b), pts(r.difference, "+"),
              "-" if r.interval_90 is None else f"[{pts(r.interval_90[0], '+')}, {pts(r.interval_90[1], '+')}]",
              pts(r.bound), "paired" if r.paired else "two-sample",
              r.outcome.upper() if r.outcome == compare.DIFFER else r.outcome,
              "" if r.needed_total is None else f"{r.needed_total:,}"] for r in rows]
    print(tabulate(table, headers=["metric", "A %", "B %", "A - B", "90% interval", "differ beyond", "images",
                                   "", "images to decide"], tablefmt="github", disable_numparse=True))
    counts = {o: sum(r.outcome == o for r in rows) for o in (compare.AGREE, compare.DIFFER, compare.INCONCLUSIVE)}
    verdict = compare.overall(rows)
    print(f"{verdict}: of {len(rows)} metrics, {counts[compare.AGREE]} agree within {args.margin:g} points, "
          f"{counts[compare.DIFFER]} differ (95% over the {len(rows)} together), {counts[compare.INCONCLUSIVE]} "
          "inconclusive (the test sets are too small to tell a difference of the margin from none)")
    diffs = protocol.differences(protocol.of_record(a), protocol.of_record(b))
    if diffs:
        print(f"the two runs' protocols differ: {protocol.describe(diffs, 'in A', 'in B')}")
    return {compare.AGREE: 0, compare.DIFFER: 1, compare.INCONCLUSIVE: 3}[verdict]


def add_run_options(add) -> None:
    """The options ``tvcore run`` shares with the pytest plugin; ``add`` is an
    ``add_argument`` (argparse) or ``addoption`` (pytest)."""
    add("--workers", type=int, default=None, metavar="N",
        help="DataLoader worker processes that decode images (building the pixel cache, augmented "
             "fine-tuning); 0 decodes in the main process (default: automatic). Cached pixels are always "
             "read in the main process")
    add("--pool", default=None, metavar="DIR", help="folder of fine-tuned weights shared between runs")
    add("--fresh", action="store_true", default=False, help="ignore fine-tuned weights already in the pool")
    add("--finetuned", default=None, metavar="DIR",
        help="folder of fine-tuned checkpoints to use instead of fine-tuning")
    add("--jobs", type=int, default=1, metavar="N",
        help="fine-tunes trained side by side before the suite runs: N processes per device (every visible GPU "
             "with --gpu); needs a pool folder (--pool or --results-dir)")


class _RunHelpFormatter(argparse.HelpFormatter):
    """``tvcore run --help`` lists the suites; they are read only when the help is
    shown, since importing the experiments takes seconds."""

    def _get_help_string(self, action):
        if action.dest == "suite":
            from .experiments import SUITES

            return f"the suite to run: {', '.join(sorted(SUITES))}"
        return super()._get_help_string(action)

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)  # whole suite names


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command parser ``args`` came through, so its usage is the one shown."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None))
            if chosen is not None:
                return _command_parser(chosen, args)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="tvcore", description="Task arithmetic on OpenCLIP models.")
    parser.add_argument("--version", action="version", version=f"tvcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data_p = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    summary = data_p.add_parser("summary", help="paper-tasks or one of its tasks: reader, images per split and "
                                                "fingerprints; mini-ddsm, digits: per split and class, and the "
                                                "leak check")
    summary.add_argument("name", help="paper-tasks (the eight tasks and ImageNet), one of them (Cars, DTD, "
                                      "EuroSAT, GTSRB, ImageNet, MNIST, RESISC45, SUN397, SVHN), mini-ddsm "
                                      "or digits")
    summary.add_argument("--root", default=os.environ.get("TVCORE_DATA"),
                         help="the folder that holds the datasets (default: $TVCORE_DATA)")
    summary.add_argument("--label", default="density", choices=["density", "status"],
                         help="mini-ddsm label column (density: ACR density 1..4, called BI-RADS 2..5)")
    summary.add_argument("--protocol", default="baseline", help="mini-ddsm protocol: baseline, focus-2, focus-5")
    summary.add_argument("--seed", type=int, default=0,
                         help="mini-ddsm: the seed of the protocol's sampling (default: 0)")
    summary.set_defaults(func=_data_summary)

    cache_p = sub.add_parser("cache", help="the pixel cache ($TVCORE_CACHE/pixels): list, size, clear").add_subparsers(
        dest="cache_command", required=True)
    cache_p.add_parser("list", help="entries, most recently used first: key, size, last use, split, images")
    cache_p.add_parser("size", help="the folder's size and its bound ($TVCORE_CACHE_MAX, default 20GB)")
    clear = cache_p.add_parser("clear", help="remove entries not in use: all, or those named")
    clear.add_argument("keys", nargs="*", metavar="KEY", help="keys (or unique prefixes) from 'tvcore cache list'")
    for command in cache_p.choices.values():
        command.set_defaults(func=_cache)

    vec_p = sub.add_parser("vector", help="task vectors over files").add_subparsers(dest="vector_command",
                                                                                      required=True)
    build = vec_p.add_parser("build", help="finetuned - pretrained, written as safetensors")
    build.add_argument("pretrained")
    build.add_argument("finetuned")
    build.add_argument("-o", "--output", required=True)
    build.add_argument("--name")
    build.add_argument("--base-model", help="recorded in the file's metadata, e.g. ViT-B-32:openai")
    build.add_argument("--arch", help="read both files as this architecture's image encoder, in any form "
                                      "tvcore import reads (pickled encoders, Hugging Face folders, OpenCLIP files)")
    build.set_defaults(func=_vector_build)

    apply = vec_p.add_parser("apply", help="base + alpha * (sum of vectors), written as safetensors")
    apply.add_argument("base")
    apply.add_argument("vectors", nargs="+")
    apply.add_argument("-o", "--output", required=True)
    apply.add_argument("--alpha", type=float, default=1.0)
    apply.add_argument("--partial", action="store_true",
                       help="allow vectors that cover only part of the base (one tower): an image-encoder vector "
                            "edits a whole CLIP model's visual.* tensors and keeps its text tower")
    apply.set_defaults(func=_vector_apply)

    merge = vec_p.add_parser("merge", help="merge vector files tensor by tensor (streaming), as safetensors")
    merge.add_argument("vectors", nargs="+")
    merge.add_argument("-o", "--output", required=True)
    from .merging import METHODS

    merge.add_argument("--method", default="task-arithmetic", help=f"one of: {', '.join(METHODS)}")
    merge.add_argument("--hp", action="append", metavar="NAME=VALUE",
                       help="a hyperparameter of a method other than task-arithmetic/ties/dare/dare-ties "
                            "(e.g. --hp common=0.8 for iso-cts), repeated as needed")
    merge.add_argument("--stats", nargs="+", metavar="FILE",
                       help="regmean/fisher: one statistics file per vector (tvcore.merging.save_statistics)")
    merge.add_argument("--lam", type=float, default=1.0, help="global scaling coefficient")
    merge.add_argument("--weights", type=float, nargs="+", help="one weight per vector")
    merge.add_argument("--density", type=float, default=0.2,
                       help="TIES: fraction of entries kept (of each whole vector, or of each tensor)")
    merge.add_argument("--trim-scope", default="vector", choices=["vector", "tensor"],
                       help="TIES trim over each whole task vector (the TIES paper; default) or per tensor")
    merge.add_argument("--drop", type=float, default=0.9, help="DARE: drop probability")
    merge.add_argument("--seed", type=int, default=0, help="DARE: mask seed")
    merge.add_argument("--base", help="weights file: write base + merged vector instead of the vector")
    merge.set_defaults(func=_vector_merge)

    run = sub.add_parser("run", help="run one suite outside pytest and write its record",
                         formatter_class=_RunHelpFormatter)
    run.add_argument("suite", help="the suite to run")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cpu)")
    run.add_argument("--gpu", action="store_true", help="run on CUDA: the same as --device cuda (the pytest "
                                                        "plugin's flag)")
    run.add_argument("--data-root", default=os.environ.get("TVCORE_DATA"), metavar="DIR",
                     help="the folder that holds the datasets, for the real suites (default: $TVCORE_DATA)")
    run.add_argument("--weights", default=os.environ.get("TVCORE_WEIGHTS"), metavar="FILE",
                     help="the real suites' ViT-B-32 weights file (default: $TVCORE_WEIGHTS)")
    run.add_argument("--results-dir", default="results", metavar="DIR",
                     help="where the record (<suite>.json) and plot go (default: results)")
    run.add_argument("--seed", type=int, default=0, help="fine-tuning seed (default: 0)")
    run.add_argument("--seeds", type=int, default=None, metavar="N",
                     help="run fine-tuning seeds 0..N-1, one record each (<suite>.json for seed 0, "
                          "<suite>-seed<K>.json for seed K), each gated")
    run.add_argument("--baselines-dir", "--baselines", default=None, metavar="DIR", dest="baselines_dir",
                     help="where <suite>.json baselines are (default: the first baselines/ folder holding one, "
                          "from the current folder upwards); the run fails (exit 1) when the gate does")
    run.add_argument("--no-gate", action="store_true", help="do not judge the record against its baseline")
    run.add_argument("--accept-improvements", action="store_true",
                     help="let a headline far better than its baseline pass the gate (otherwise it fails as a "
                          "suspicious improvement)")
    run.add_argument("--update-baselines", action="store_true",
                     help="refused: baselines are written by pytest bench/ --update-baselines --seeds 10")
    run.add_argument("--quiet", action="store_true", help="no progress bars and no warnings (errors still show)")
    run.add_argument("--methods", default=None, metavar="M1,M2",
                     help="merging suites: run only these methods (tvcore.merging.METHODS), recorded as "
                          "<suite>-<m1>+<m2>.json and not gated")
    run.add_argument("--rehearsal", action="store_true",
                     help="a dry run: the same code with capped splits, a few fine-tuning steps and a 3-point grid")
    run.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                     help="the activation of the --weights model when no file or tag records it (OpenAI-trained "
                          "CLIP weights: --quick-gelu)")
    run.add_argument("--plan", action="store_true",
                     help="print the fine-tuning steps, images evaluated, pixel-cache size and a wall time "
                          "predicted from a few steps timed on this device, then exit without running")
    run.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                     help="evaluation arithmetic (default auto: bf16 autocast on CUDA, fp32 elsewhere)")
    add_run_options(run.add_argument)
    run.set_defaults(func=_run)

    imp = sub.add_parser("import", help="a published checkpoint -> the OpenCLIP image encoder as safetensors")
    imp.add_argument("source", help="the paper's zeroshot.pt / <Task>/finetuned.pt, a Hugging Face CLIP folder, "
                                    "or an OpenCLIP weights file")
    imp.add_argument("-o", "--output", required=True)
    imp.add_argument("--arch", required=True, help="OpenCLIP architecture, e.g. ViT-B-32")
    imp.add_argument("--base", help="base weights: a CLIPVisionModel's projection comes from it, and "
                                    "zeroshot.pt is checked against it")
    imp.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                     help="override the activation read from the file")
    imp.add_argument("--check-base", action=argparse.BooleanOptionalAction, default=None,
                     help="check the imported weights equal --base (default: for zeroshot.pt)")
    imp.add_argument("--base-atol", type=float, default=0.0)
    imp.add_argument("--record", help="also write the provenance record here (JSON)")
    imp.add_argument("--verbose", action="store_true", help="print the provenance record")
    imp.set_defaults(func=_import)

    ev = sub.add_parser("eval", help="one model on one task split: accuracy, per class, confusion matrix")
    ev.add_argument("task", help="MNIST, ..., ImageNet, mini-ddsm/baseline, digits/rot90, ...")
    ev.add_argument("--arch", default="ViT-B-32", help="OpenCLIP architecture name or JSON config")
    ev.add_argument("--weights", default=os.environ.get("TVCORE_WEIGHTS"),
                    help="weights file or OpenCLIP tag (default: $TVCORE_WEIGHTS)")
    ev.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                    help="the activation when no file or tag records it (OpenAI-trained CLIP weights: --quick-gelu)")
    ev.add_argument("--image-encoder", metavar="FILE",
                    help="an image encoder file (tvcore import's output) over --weights, which gives the text tower")
    ev.add_argument("--vector", help="a task vector file: evaluate weights + alpha * vector")
    ev.add_argument("--alpha", type=float, default=1.0, help="the vector's coefficient (default: 1)")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"], help="the split (default: test)")
    ev.add_argument("--data-root", default=os.environ.get("TVCORE_DATA"), metavar="DIR",
                    help="the folder that holds the datasets (default: $TVCORE_DATA)")
    ev.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    ev.add_argument("--workers", type=int, default=None, metavar="N",
                    help="processes that decode images into the pixel cache; 0: the main process")
    ev.add_argument("--results-dir", default="results", metavar="DIR", help="where the record goes (default: results)")
    ev.add_argument("--name", help="the record's case name (default: eval-<task>-<split>-<model>, the model named "
                                   "by its files' stems, the vector's alpha and a hash of their paths)")
    ev.add_argument("--quiet", action="store_true", help="no progress bars and no warnings (errors still show)")
    ev.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="evaluation arithmetic (default auto: bf16 autocast on CUDA, fp32 elsewhere)")
    ev.set_defaults(func=_eval)

    verdict = sub.add_parser("verdict", help="judge result records against the published figures with this "
                                             "tvcore's rules: reproduced, contradicted or inconclusive")
    verdict.add_argument("records", nargs="+", metavar="RECORD", help="records of a birads, negation, addition or "
                                                                     "merging suite (R/<case>.json)")
    verdict.add_argument("--write", action="store_true", help="also write <case>.verdict.json beside each record")
    verdict.set_defaults(func=_verdict)

    compare = sub.add_parser("compare", help="do two result records agree, differ, or cannot tell, metric by metric?")
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--allow-different-data", action="store_true",
                         help="compare records of different suites or test sets all the same")
    compare.add_argument("--margin", type=float, default=1.0, metavar="POINTS",  # tvcore.compare.DEFAULT_MARGIN
                         help="the largest difference, in percentage points, that counts as the same result "
                              "(default 1): metrics agree when the difference is shown to lie within it")
    compare.set_defaults(func=_compare)
    return parser


@contextlib.contextmanager
def silenced():
    """--quiet: notices and warnings (stderr, Python warnings, library logs) are not
    shown; errors are, since :func:`main` prints them after this block ends."""
    import logging
    import warnings

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def one_line(exc: BaseException) -> str:
    """A user error as the single line it is shown as."""
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    """Run one command. A :class:`TvcoreError` (a user's mistake) is printed as one
    line and exits 2; any other exception is a bug and keeps its traceback."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # shown with the subcommand's usage, not the top-level one
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if getattr(args, "quiet", False):
            with silenced():
                return args.func(args)
        return args.func(args)
    except TvcoreError as exc:
        print(f"tvcore: error: {one_line(exc)}", file=sys.stderr)
        return 2


def freeze_at_exit() -> None:
    """A quick exit for this process: at exit Python collects garbage over every
    object the process holds, and torch, torchvision and OpenCLIP make millions at
    import (1.1 s of a 5-s ``tvcore eval`` on this 2-core CPU). ``gc.freeze``, run as
    an exit handler, leaves them out of those collections; the other exit handlers
    run and files close as before. Registered once; for processes that end when
    tvcore's work does (the command line, a pytest session)."""
    import atexit
    import gc

    if not getattr(freeze_at_exit, "registered", False):
        atexit.register(gc.freeze)
        freeze_at_exit.registered = True


def entry() -> int:
    """The process's entry point (``tvcore``, ``python -m tvcore``): :func:`main`,
    with a quick exit (:func:`freeze_at_exit`). A caller of :func:`main` from Python
    keeps its exit as it was."""
    freeze_at_exit()
    return main()


if __name__ == "__main__":
    sys.exit(entry())
