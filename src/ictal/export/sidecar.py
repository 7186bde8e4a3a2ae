"""The JSON sidecar of an exported model: everything needed to use it on raw EEG (channels,
montage, rate, filters, normalisation, windowing, output rate, operating point). No torch.

A sidecar is read as untrusted input (``read_sidecar``): a regular file of at most 1 MiB, then
one typed validation (``Sidecar``) of every value detect uses, bounded like a checkpoint's
(``ictal.models.metadata``) and consistent with itself; a refusal names the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool, ValidationError, model_validator

from ictal.config import PREPROCESSING_VERSION, SignalConfig
from ictal.errors import PreflightError, UsageError
from ictal.events.deployed import Point
from ictal.events.postprocess import PostProcess
from ictal.io.paths import is_safe_name
from ictal.io.untrusted import UnreadableInput, read_json
from ictal.models.metadata import (
    Channels,
    MissingChannels,
    Part,
    Preprocessing,
    Rate,
    Samples,
    ShortText,
    check_rate,
    check_windowing,
    invalid,
    trained_edges,
)
from ictal.signal.montage import montage_channels as montage_names
from ictal.stitch import pad_for

SIDECAR = "ictal-model.json"
FORMAT = "ictal-model-1"
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
MAX_SIDECAR_BYTES = 1 << 20  # an export's sidecar is a few KB
EXPORT_AGAIN = "export the model again (`ictal export CKPT --out DIR`): this sidecar was altered"


def montage_channels(signal: dict[str, Any] | SignalConfig) -> list[str]:
    """The model's input channels, in order: the montage's derivations of the electrodes."""
    kind = signal.montage if isinstance(signal, SignalConfig) else signal["montage"]
    return list(montage_names(kind))


def build_sidecar(
    meta: dict[str, Any],
    *,
    fmt: str,
    hop: int,
    pp: PostProcess,
    tuned: bool,
    pp_source: str,
    point: Point,
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
            # reflect: the recording mirrored by edge_pad_samples at both ends (as trained)
            "edges": trained_edges(meta),
            "edge_pad_samples": pad_for(trained_edges(meta), window, stride),
        },
        "output": {"stride": stride, "rate_hz": fs / stride},
        "operating_point": {"tuned": tuned, "source": pp_source, **_pp_dict(pp), **point.doc()},
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


class SidecarError(PreflightError):
    """A sidecar whose values are not what ``ictal export`` writes: exit 3."""


def _plain_file(name: str) -> str:
    if not is_safe_name(name):
        raise ValueError("not a plain name inside the export folder (no separators, no '..')")
    return name


Seconds = Annotated[float, Field(strict=True, ge=0.0, allow_inf_nan=False)]
Probability = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]


class _Input(Part):
    shape: tuple[Literal["batch"], Channels, Literal["samples"]]


class _Model(Part):
    file: Annotated[str, AfterValidator(_plain_file)]
    format: Literal["onnx", "torchscript"]
    input: _Input


class _Preprocessing(Part):
    fs: Rate
    signal: Preprocessing
    missing_channels: MissingChannels


class _Windowing(Part):
    window_samples: Samples
    edges: Literal["reflect", "none"] = "none"  # a sidecar from before the setting: none


class _Output(Part):
    stride: Samples


class _OperatingPoint(Part):
    tuned: StrictBool
    source: ShortText
    threshold: Probability
    hysteresis_low: Probability | None = None
    min_duration_s: Seconds
    merge_gap_s: Seconds
    max_event_s: Annotated[float, Field(strict=True, gt=0.0, allow_inf_nan=False)] | None = None
    scorer: ShortText | None = None  # None: a bare threshold (older sidecars: no key)
    budget_fa24h: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    dev_sensitivity: Probability | None = None
    dev_fa24h: Seconds | None = None  # a rate >= 0, bounded like a duration

    @model_validator(mode="after")
    def _postprocess(self) -> _OperatingPoint:
        self.postprocess()  # its own rules (hysteresis below the threshold)
        if (self.scorer is None) != (self.budget_fa24h is None):
            raise ValueError("scorer and budget_fa24h come together (or are both null)")
        return self

    def point(self) -> Point:
        """The operating point this sidecar records."""
        return Point(self.threshold, self.scorer, self.budget_fa24h, self.dev_sensitivity,
                     self.dev_fa24h)  # fmt: skip

    def postprocess(self) -> PostProcess:
        return PostProcess(self.threshold, self.hysteresis_low, self.min_duration_s,
                           self.merge_gap_s, self.max_event_s)  # fmt: skip


class Sidecar(Part):
    """The values of a sidecar that ``ictal detect --model`` uses, typed and consistent."""

    format: Literal["ictal-model-1"]
    model: _Model
    preprocessing: _Preprocessing
    windowing: _Windowing
    output: _Output
    operating_point: _OperatingPoint

    @model_validator(mode="after")
    def _consistent(self) -> Sidecar:
        pre, n_channels = self.preprocessing, self.model.input.shape[1]
        check_windowing(n_channels, self.windowing.window_samples, self.output.stride)
        check_rate(pre.fs, pre.signal)
        derived = len(montage_channels(pre.signal))
        if n_channels != derived:
            raise ValueError(f"the model takes {n_channels} channels; the {pre.signal.montage} "
                             f"montage gives {derived}")  # fmt: skip
        return self

    def meta(self) -> dict[str, Any]:
        """The checkpoint metadata detect needs (config subset, window, stride, rate)."""
        pre = self.preprocessing
        return {
            "config": {
                "signal": pre.signal.model_dump(mode="json"),
                "corpus": {"policy": {"missing_channels": pre.missing_channels}},
                "windows": {"edges": self.windowing.edges},
            },
            "window": self.windowing.window_samples,
            "output_stride": self.output.stride,
            "fs": pre.fs,
            "n_channels": self.model.input.shape[1],
        }


def read_sidecar(model_dir: Path) -> tuple[dict[str, Any], Sidecar]:
    """An export directory's sidecar, as written and validated: no sidecar or not JSON is a
    usage error (exit 2); a value that is not what ``ictal export`` writes is a refusal naming
    the file and field (exit 3)."""
    path = Path(model_dir) / SIDECAR
    try:
        doc = read_json(path, "sidecar", MAX_SIDECAR_BYTES)
    except FileNotFoundError:
        raise UsageError(
            f"--model {model_dir}: no {SIDECAR} (not an export); make one with `ictal export`"
        ) from None
    except UnreadableInput as exc:
        raise UsageError(f"{exc}; export the model again") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"{path} is not an {FORMAT} sidecar; export the model again")
    try:
        return doc, Sidecar.model_validate(doc)
    except ValidationError as exc:
        raise SidecarError(f"sidecar {path} is malformed: {invalid(exc)}", EXPORT_AGAIN) from None
