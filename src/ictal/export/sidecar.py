"""The JSON sidecar of an exported model: everything needed to use it on raw EEG (channels,
montage, rate, filters, normalisation, windowing, output rate, operating point). No torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ictal.config import PREPROCESSING_VERSION
from ictal.errors import UsageError
from ictal.events.postprocess import PostProcess

SIDECAR = "ictal-model.json"
FORMAT = "ictal-model-1"
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}


def montage_channels(signal: dict[str, Any]) -> list[str]:
    """The model's input channels, in order: the montage's derivations of the electrodes."""
    import numpy as np

    from ictal.signal.montage import apply_montage

    _, names = apply_montage(np.zeros((len(signal["channels"]), 1), np.float32), signal["montage"])
    return list(names)


def build_sidecar(
    meta: dict[str, Any],
    *,
    fmt: str,
    hop: int,
    pp: PostProcess,
    tuned: bool,
    pp_source: str,
    check: dict[str, Any],
    checkpoint: dict[str, Any],
) -> dict[str, Any]:
    """The sidecar of a checkpoint's model (``meta`` as ``load_model`` returns it)."""
    trained = meta["config"]
    signal = dict(trained["signal"])
    fs, window, stride = float(meta["fs"]), int(meta["window"]), int(meta["output_stride"])
    return {
        "format": FORMAT,
        "model": {
            "file": MODEL_FILES[fmt],
            "format": fmt,
            "name": meta["model_name"],
            "params": meta["model_params"],
            "source": meta.get("model_source"),  # the package and version it was trained with
            "input": {
                "name": "eeg",
                "shape": ["batch", int(meta["n_channels"]), "samples"],
                "dtype": "float32",
                "samples": f"a multiple of {stride}",
            },
            "output": {
                "name": "logits",
                "shape": ["batch", "samples / output_stride"],
                "meaning": "seizure logit per output step; sigmoid gives probability",
            },
        },
        "preprocessing": {
            "version": PREPROCESSING_VERSION,
            "electrodes": list(signal["channels"]),
            "missing_channels": trained["corpus"]["policy"]["missing_channels"],
            "montage": signal["montage"],
            "channels": montage_channels(signal),
            "fs": fs,
            "bandpass_hz": list(signal["bandpass"]),
            "notch_hz": signal["notch"],
            "notch_q": signal["notch_q"],
            "notch_harmonics": signal["notch_harmonics"],
            "filter_order": signal["filter_order"],
            "filter_phase": "zero (forward-backward equivalent, order doubled)",
            "normalisation": signal["normalisation"],
            "clip": signal["clip"],
            "signal": signal,  # the config section as ictal reads it
        },
        "windowing": {
            "window_samples": window,
            "window_s": window / fs,
            "hop_samples": hop,
            "hop_s": hop / fs,
            "stitching": "overlap-add of sigmoid probabilities with tent weights",
        },
        "output": {"stride": stride, "rate_hz": fs / stride},
        "operating_point": {"tuned": tuned, "source": pp_source, **_pp_dict(pp)},
        "checkpoint": checkpoint,
        "check": check,
    }


def _pp_dict(pp: PostProcess) -> dict[str, Any]:
    return {
        "threshold": pp.threshold,
        "hysteresis_low": pp.hysteresis_low,
        "min_duration_s": pp.min_duration_s,
        "merge_gap_s": pp.merge_gap_s,
        "max_event_s": pp.max_event_s,
    }


def read_sidecar(model_dir: Path) -> dict[str, Any]:
    """The sidecar of an export directory, or a usage error naming it and the fix."""
    path = Path(model_dir) / SIDECAR
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"--model {model_dir}: no {SIDECAR} (not an export); make one with `ictal export`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not readable JSON ({exc}); export the model again") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"{path} is not an {FORMAT} sidecar; export the model again")
    return doc


def sidecar_postprocess(doc: dict[str, Any]) -> PostProcess:
    """The operating point a sidecar carries."""
    op = doc["operating_point"]
    return PostProcess(**{k: op[k] for k in _pp_dict(PostProcess())})


def sidecar_meta(doc: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint metadata detect needs (config subset, window, stride), from a sidecar."""
    pre = doc["preprocessing"]
    return {
        "config": {
            "signal": pre["signal"],
            "corpus": {"policy": {"missing_channels": pre["missing_channels"]}},
        },
        "window": doc["windowing"]["window_samples"],
        "output_stride": doc["output"]["stride"],
        "fs": pre["fs"],
    }
