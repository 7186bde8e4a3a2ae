"""``write_report``: one self-contained HTML page for a run, an evaluation, or both."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ictal.cache.manifest import CacheView
from ictal.config_file import load_config
from ictal.errors import UsageError
from ictal.evaluate.evaluation import evaluate_view
from ictal.evaluate.report import pick_recordings, read_metrics, write_report

FS = 16.0
PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


class BurstModel(nn.Module):
    output_stride = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, w = x.shape
        return 12.0 * x.mean(1)[:, : w // 4 * 4].reshape(b, -1, 4).mean(-1) - 6.0


def make_run(root: Path, with_eval: bool) -> Path:
    """A run directory with metrics (and a torn last line), optionally one evaluation."""
    run = root / "run-abc"
    (run / "checkpoints").mkdir(parents=True)
    lines = []
    for step in range(1, 41):
        lines.append({"phase": "train", "epoch": step // 10, "step": step, "time": 0.0,
                      "loss": 1.0 / step, "lr": 1e-3})  # fmt: skip
        if step % 10 == 0:
            lines.append({"phase": "validate", "epoch": step // 10, "step": step, "time": 0.0,
                          "val_loss": 0.5, "val_loss_weighted": 0.9,
                          "val_auroc": 0.6 + step / 200})  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"phase": "tra'
    (run / "metrics.jsonl").write_text(text)
    if with_eval:
        ckpt = run / "checkpoints" / "best.pt"
        ckpt.write_bytes(b"weights")
        rows = []
        for i in range(4):
            n = int(FS * 300)
            x = np.zeros((n, 1), np.float32)
            a = int(FS * (50 + 20 * i))
            x[a : a + int(FS * 30)] = 1.0
            if i == 3:
                x[int(FS * 250) : int(FS * 260)] = 0.6  # a weaker false alarm (p 0.77)
            np.save(root / f"a{i}.npy", x)
            rows.append({"id": f"p_s001_t00{i}", "split": "dev", "n_samples": n,
                         "array": f"a{i}.npy", "seizures": [[a, a + int(FS * 30)]]})  # fmt: skip
        view = CacheView(root, {"key": "f" * 64, "fs": FS, "channels": ["Cz"]}, rows)
        meta = {"output_stride": 4, "window": int(FS * 40), "run_id": "run-abc",
                "cache_key": "c" * 64, "n_channels": 1, "fs": FS}  # fmt: skip
        evaluate_view(load_config(None, []), view, BurstModel(), meta, checkpoint=ckpt,
                      split="dev", out=run / "eval-dev")  # fmt: skip
    return run


def pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in PNG.findall(html)]


def test_run_without_evaluation(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_eval=False)
    out = write_report(run)
    assert out == run / "report.html"
    html = out.read_text()
    images = pngs(html)
    assert len(images) == 1 and all(b.startswith(b"\x89PNG") for b in images)
    assert "No evaluation yet" in html and "ictal evaluate" in html
    assert "run-abc" in html
    assert "http" not in html.replace("http-equiv", "")  # self-contained: nothing fetched


def test_run_with_evaluation(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_eval=True)
    html = write_report(run).read_text()
    assert len(pngs(html)) == 3  # training curves, operating curves, traces
    assert 'class="ops"' in html and "OVLP (NEDC)" in html and "TAES (NEDC)" in html
    assert "SzCORE events" in html and "pooled" in html
    assert "c" * 64 in html  # cache key of the checkpoint
    assert str(run / "checkpoints" / "best.pt") in html
    assert "No evaluation yet" not in html
    # the evaluation directory alone finds its run through the checkpoint path
    html_eval = write_report(run / "eval-dev").read_text()
    assert len(pngs(html_eval)) == 3 and 'class="ops"' in html_eval


def test_evaluation_without_run_and_without_probs(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_eval=True)
    ev = tmp_path / "elsewhere"
    (run / "eval-dev").rename(ev)
    (run / "metrics.jsonl").unlink()
    for p in (ev / "probs").glob("*.npy"):
        p.unlink()
    html = write_report(ev).read_text()
    assert "No run directory" in html
    assert len(pngs(html)) == 1  # operating curves only; no traces without probabilities
    assert 'class="ops"' in html


def test_pick_and_metrics(tmp_path: Path) -> None:
    recs = [
        {"id": "a", "ref_events": [[1, 2]], "ovlp_f1_export": 1.0},
        {"id": "b", "ref_events": [[1, 2]], "ovlp_f1_export": 0.5},
        {"id": "c", "ref_events": [], "ovlp_f1_export": 0.0},
        {"id": "d", "ref_events": [[1, 2]], "ovlp_f1_export": 0.8},
    ]
    assert [(t, r["id"]) for t, r in pick_recordings(recs)] == [
        ("best", "a"), ("typical", "d"), ("worst", "c"),
    ]  # fmt: skip
    (tmp_path / "m.jsonl").write_text('{"loss": 1}\nnot json\n[1]\n{"loss": 2}\n')
    assert read_metrics(tmp_path / "m.jsonl") == [{"loss": 1}, {"loss": 2}]
    with pytest.raises(UsageError, match="not a run"):
        write_report(tmp_path)
