"""``ictal score`` against SzCORE's own evaluator (``szcore-evaluation`` 0.0.7), differentially.

Hundreds of generated reference/hypothesis pairs in a BIDS tree, times with 0 to 6 decimals
(sub-second included), events at the tolerance edges, around the 300 s split and the 90 s
merge, overlapping, past the end, header-only and missing hypotheses: the evaluator's numbers
and Ictal's must agree on every pair and for both poolings. The evaluator is installed from
requirements/szcore-evaluation.txt (see the Makefile).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import set_args
from ictal.cli import run

evaluate_mod = pytest.importorskip("szcore_evaluation.evaluate", reason="make venv installs it")
COLUMNS = "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration"
METRICS = ("sensitivity", "precision", "f1", "fpRate")
N_PAIRS = 360
N_SUBJECTS = 12


def _fmt(rng: np.random.Generator, x: float) -> str:
    """A time as some writer writes it: 0, 1, 2 (epilepsy2bids), 4 (TUSZ) or 6 decimals."""
    return f"{x:.{int(rng.choice([0, 1, 2, 2, 4, 4, 6]))}f}"


def _events(rng: np.random.Generator, duration: float, near: list[tuple[float, float]]):
    """Random seizures; some placed at the tolerance edges of ``near`` (the reference)."""
    out = []
    for _ in range(int(rng.integers(0, 5))):
        length = float(
            rng.choice([rng.uniform(0.05, 5), rng.uniform(5, 120), rng.uniform(250, 700)])
        )
        onset = float(rng.uniform(0, duration))
        out.append((onset, length))
    for a, b in near:
        if rng.random() < 0.5:  # ends just inside or outside the 30 s before a seizure
            edge = a - 30 + float(rng.choice([-1.0, -0.5, -0.01, 0.0, 0.01, 0.5, 1.0]))
            start = max(edge - float(rng.uniform(0.1, 20)), 0.0)
            out.append((start, edge - start))
        if rng.random() < 0.5:  # starts just inside or outside the 60 s after it
            edge = b + 60 + float(rng.choice([-1.0, -0.5, -0.01, 0.0, 0.01, 0.5, 1.0]))
            out.append((edge, float(rng.uniform(0.1, 20))))
        if rng.random() < 0.3:  # two pieces across a gap near 90 s (merged or not)
            gap = 90 + float(rng.choice([-0.6, -0.01, 0.0, 0.01, 0.6]))
            out.append((b + gap, float(rng.uniform(0.5, 10))))
    return [(a, d) for a, d in out if d > 0.01]


def _write(path: Path, rng: np.random.Generator, duration: str, events) -> None:
    """An events.tsv: seizure rows, or a bckg row (sometimes with n/a times)."""
    lines = [COLUMNS]
    for onset, length in events:
        kind = str(rng.choice(["sz", "sz_foc_ia", "sz_gen_m_tonicClonic"]))
        lines.append(f"{_fmt(rng, onset)}\t{_fmt(rng, length)}\t{kind}\tn/a\tn/a\tn/a\t{duration}")
    if not events or rng.random() < 0.2:
        times = "n/a\tn/a" if rng.random() < 0.5 else f"0\t{duration}"
        lines.append(f"{times}\tbckg\tn/a\tn/a\tn/a\t{duration}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _dataset(root: Path, seed: int, n_pairs: int) -> list[str]:
    """Reference and hypothesis BIDS trees under ``root``; the recording names."""
    rng = np.random.default_rng(seed)
    names = []
    for k in range(n_pairs):
        sub = f"sub-{k % N_SUBJECTS:02d}"
        name = f"{sub}_ses-01_task-szMonitoring_run-{k:03d}_events.tsv"
        rel = Path(sub) / "ses-01" / "eeg" / name
        duration = _fmt(rng, float(rng.uniform(1.5, 3600)))
        ref = _events(rng, float(duration), [])
        spans = [(a, a + d) for a, d in ref]
        _write(root / "ref" / rel, rng, duration, ref)
        kind = rng.random()
        if kind < 0.05:
            (root / "hyp" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "hyp" / rel).write_text(COLUMNS + "\n")  # header only: empty
        elif kind > 0.08:
            _write(root / "hyp" / rel, rng, duration, _events(rng, float(duration), spans))
        # else (3 %): no hypothesis file, which the evaluator scores as empty
        names.append(str(rel))
    return names


def _close(a: float | None, b: float) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _ictal(root: Path, pooling: str, *extra: str) -> dict:
    out = root / f"ictal-{pooling}.json"
    args = ["--missing-hyp", "empty", "--pooling", pooling, "--json", str(out), *extra]
    code = run(["score", str(root / "ref"), str(root / "hyp"), "--scorers", "szcore", *args])
    assert code == 0
    return json.loads(out.read_text())


def _evaluator(root: Path, per_subject: bool) -> dict:
    return evaluate_mod.evaluate_dataset(
        root / "ref", root / "hyp", root / "evaluator.json", avg_per_subject=per_subject
    )


def _mismatches(ours: dict, theirs: dict, stds: bool) -> list[str]:
    bad = []
    for name, key in (("szcore", "event_results"), ("szcore_samples", "sample_results")):
        for metric in METRICS:
            mine = "fa_per_24h" if metric == "fpRate" else metric
            pairs = [(mine, metric)] + ([(f"{mine}_std", f"{metric}_std")] if stds else [])
            for m, t in pairs:
                if not _close(ours[name][m], theirs[key][t]):
                    bad.append(f"{name}.{m}: ictal {ours[name][m]} evaluator {theirs[key][t]}")
    return bad


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("szcore-parity")
    return root, _dataset(root, seed=30, n_pairs=N_PAIRS)


@pytest.mark.parametrize("pooling", ["recording", "subject"])
def test_pooled_scores_equal_the_evaluators(dataset, pooling: str) -> None:
    root, _ = dataset
    ours = _ictal(root, pooling)
    theirs = _evaluator(root, per_subject=pooling == "subject")
    assert _mismatches(ours, theirs, stds=pooling == "subject") == []
    assert ours["files"] == N_PAIRS
    if pooling == "subject":
        assert ours["szcore"]["subjects"] == N_SUBJECTS


def _rates(hits: float, misses: float, fas: float, n_ref: float, duration: float) -> dict:
    """The evaluator's four metrics from one file's counts (its computeScores)."""
    return {
        "sensitivity": hits / n_ref if n_ref else math.nan,
        "precision": hits / (hits + fas) if hits + fas else math.nan,
        "f1": 2 * hits / (2 * hits + fas + misses) if n_ref + fas else math.nan,
        "fpRate": fas / (duration / 3600 / 24),
    }


@pytest.mark.slow
def test_every_pair_scores_as_the_evaluator_scores_it(dataset, tmp_path: Path) -> None:
    """Each pair alone: the evaluator on a one-recording dataset, Ictal's --per-file row."""
    root, names = dataset
    table = tmp_path / "per-file.csv"
    code = run(["score", str(root / "ref"), str(root / "hyp"), "--scorers", "szcore",
                "--missing-hyp", "empty", "--per-file", str(table)])  # fmt: skip
    assert code == 0
    rows = {Path(r["ref"]).name: r for r in csv.DictReader(table.open())}
    mismatches = []
    for rel in names:
        one = tmp_path / "one"
        for side in ("ref", "hyp"):
            dst = one / side / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if (root / side / rel).exists():
                dst.write_bytes((root / side / rel).read_bytes())
        theirs = _evaluator(one, per_subject=False)
        row = rows[Path(rel).name]
        for name, key in (("szcore", "event_results"), ("szcore_samples", "sample_results")):
            c = [float(row[f"{name}_{f}"]) for f in ("hits", "misses", "false_alarms", "n_ref")]
            duration = float(row["duration_s"])
            ours = _rates(*c, duration)
            bad = [m for m in METRICS if not _close(theirs[key][m], ours[m])]
            if bad:
                mismatches.append(f"{rel} {name}: {bad} ictal {ours} evaluator {theirs[key]}")
        shutil.rmtree(one)  # the evaluator scores every sub-* directory it finds
    assert mismatches == [], f"{len(mismatches)} (pair, scorer) differ:\n" + "\n".join(
        mismatches[:10]
    )


@pytest.mark.parametrize("fs", [1, 2])
def test_parameters_set_in_the_config_reach_timescoring(dataset, tmp_path: Path, fs: int) -> None:
    """Non-default tolerances, overlap, split, merge and rate (``--set scoring.szcore.*``)
    equal timescoring given the same parameters on masks the evaluator's reader cuts."""
    from epilepsy2bids.annotations import Annotations
    from timescoring.annotations import Annotation
    from timescoring.scoring import EventScoring, SampleScoring

    root, names = dataset
    chosen = {"tolerance_start_s": 5.0, "tolerance_end_s": 12.5, "min_overlap": 0.2,
              "max_event_s": 120.0, "merge_gap_s": 20.0}  # fmt: skip
    table = tmp_path / "per-file.csv"
    sets = set_args(
        f"scoring.szcore.fs={fs}", *(f"scoring.szcore.{k}={v}" for k, v in chosen.items())
    )
    code = run(["score", str(root / "ref"), str(root / "hyp"), "--scorers", "szcore",
                "--missing-hyp", "empty", "--per-file", str(table), *sets])  # fmt: skip
    assert code == 0
    rows = {Path(r["ref"]).name: r for r in csv.DictReader(table.open())}
    param = EventScoring.Parameters(*chosen.values())
    mismatches = []
    for rel in names[:120]:
        ref = Annotation(Annotations.loadTsv(root / "ref" / rel).getMask(fs), fs)
        try:
            hyp = Annotation(Annotations.loadTsv(root / "hyp" / rel).getMask(fs), fs)
        except (FileNotFoundError, IndexError):  # missing or header-only: empty
            hyp = Annotation(np.zeros_like(ref.mask), fs)
        row = rows[Path(rel).name]
        for name, s in (("szcore", EventScoring(ref, hyp, param)),
                        ("szcore_samples", SampleScoring(ref, hyp, fs=fs))):  # fmt: skip
            theirs = (s.tp, s.refTrue - s.tp, s.fp, s.refTrue)
            ours = tuple(
                float(row[f"{name}_{f}"]) for f in ("hits", "misses", "false_alarms", "n_ref")
            )
            if ours != theirs:
                mismatches.append(f"{rel} {name}: ictal {ours} timescoring {theirs}")
    assert mismatches == [], "\n".join(mismatches[:10])


def _evaluator_tree(corpus: Path, hyp_dir: Path, ids: list[str], out: Path) -> Path:
    """The split's reference TSVs and evaluate's exports laid out as the evaluator reads them
    (the hypothesis at the reference's relative path)."""
    for ref in corpus.rglob("*_events.tsv"):
        rid = ref.name[: -len("_events.tsv")]
        if rid in ids:
            rel = ref.relative_to(corpus)
            for side, src in (("ref", ref), ("hyp", hyp_dir / ref.name)):
                (out / side / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out / side / rel)
    return out


@pytest.mark.slow
def test_evaluate_scores_szcore_as_the_evaluator_scores_its_exports(tmp_path: Path) -> None:
    """``ictal evaluate`` on a synthetic BIDS corpus (several subjects): its SzCORE scores,
    per subject at the default threshold and pooled at an operating point, equal the
    evaluator's on the reference events.tsv files and the hypotheses evaluate exported."""
    from ictal.cache.build import build_cache
    from ictal.config_file import load_config
    from ictal.corpus.synth import synthesize
    from ictal.evaluate.evaluation import evaluate
    from ictal.evaluate.summary import summary_table
    from ictal.events.operating_points import (
        OperatingPoint,
        OperatingPoints,
        save_operating_points,
    )
    from ictal.events.postprocess import postprocess_of
    from test_evaluate import write_checkpoint

    synthesize(tmp_path / "corpus", patients=6, hours=0.6, seed=3, format="bids")
    roots = [f"{k}.root={tmp_path / k}" for k in ("corpus", "cache", "runs")]
    cfg = load_config(None, [*roots, "cache.executor=serial", "scoring.szcore.pooling=subject"])
    build_cache(cfg, workers=1)
    # frozen points at the default threshold and post-processing: the exports are the
    # default hypotheses, so both poolings can be checked on the same files
    pp = postprocess_of(cfg.evaluate)
    ops = OperatingPoints(
        postprocess=pp,
        points={
            n: {10.0: OperatingPoint(n, 10.0, pp.threshold, None)}
            for n in ("ovlp", "taes", "szcore")
        },
        split="dev",
    )
    frozen = save_operating_points(tmp_path / "ops.json", ops)
    ckpt = write_checkpoint(tmp_path / "m" / "model.pt")
    res = evaluate(cfg, ckpt, split="train", out=tmp_path / "ev", operating_points=frozen)
    ids = [r["id"] for r in res.scores["recordings"]]
    (export,) = res.scores["exports"]["points"]  # ovlp@10, at the default threshold
    assert export["operating_point"]["threshold"] == pp.threshold
    hyp_dir = res.out / export["dir"] / "szcore"
    tree = _evaluator_tree(tmp_path / "corpus", hyp_dir, ids, tmp_path / "t")
    assert len(list((tree / "hyp").rglob("*.tsv"))) == len(ids) >= 4
    default = res.scores["default"]["scores"]
    point = res.scores["operating_points"]["points"]["szcore"][0]
    by_subject = _evaluator(tree, per_subject=True)
    pooled = _evaluator(tree, per_subject=False)
    assert default["szcore"]["subjects"] >= 3
    bad = _mismatches(default, by_subject, stds=True)
    bad += _mismatches({"szcore": point["counts"], "szcore_samples": point["szcore_samples"]},
                       pooled, stds=False)  # fmt: skip
    assert bad == []
    assert "mean over subjects" in str(summary_table(res).caption)
