"""The environment against the lock: Python, the installed packages (as pip recorded them),
torch and the CUDA device the config would use, exercised with a real tiny operation.

A version other than the lock's that Ictal still supports is a warning; a missing required
package, one outside Ictal's supported range, or a device the config asks for and cannot
use is a failure.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ictal.doctor import Check

LOCK = Path("requirements") / "runtime.lock"
TORCH_PIN = Path("requirements") / "torch.txt"
KEY_PACKAGES = ("numpy", "scipy", "edfio", "pydantic", "fsspec", "s3fs")  # rows of their own
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def project_root() -> Path | None:
    """The checkout (or image copy) this Ictal runs from, when it carries its lock."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / LOCK).is_file() else None


def read_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of a requirements or lock file."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def _installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _supported() -> dict[str, Requirement]:
    """Ictal's own requirements (without extras): the versions it supports."""
    out = {}
    for text in md.requires("ictal") or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out[canonicalize_name(req.name)] = req
    return out


def _base(version: str) -> str:
    """The version without its build label (``2.13.0+cpu`` -> ``2.13.0``)."""
    return version.split("+", 1)[0]


def _package(name: str, locked: str | None, supported: Requirement | None) -> Check:
    have = _installed(name)
    if have is None:
        if supported is not None:
            return Check(
                name,
                "fail",
                "not installed (Ictal requires it)",
                "install the environment from the lock (make venv)",
            )
        return Check(name, "skip", f"not installed (lock: {locked})")
    try:
        ok = supported is None or supported.specifier.contains(Version(have), prereleases=True)
    except InvalidVersion:
        ok = False
    if not ok:
        return Check(
            name,
            "fail",
            f"{have} is outside Ictal's supported {supported}",
            f"install {name}=={locked or supported}",
        )
    if locked is not None and _base(have) != _base(locked):
        return Check(
            name,
            "warn",
            f"{have}; the lock has {locked} (supported, but not the tested environment)",
            "install the environment from the lock",
        )
    return Check(name, "ok", have + (" (as locked)" if locked else ""))


def environment(lock: Path | None = None) -> list[Check]:
    """Python, torch and the key packages, and a summary of the others, against the lock."""
    checks = [_python()]
    root = project_root()
    lock = lock or (root / LOCK if root else None)
    pins: dict[str, str] = {}
    if lock is None:
        checks.append(
            Check(
                "lock",
                "warn",
                "no lock found next to this installation "
                "(installed from a wheel?): versions not compared",
                "pass --lock requirements/runtime.lock",
            )
        )
    else:
        try:
            pins = read_pins(lock)
        except OSError as exc:
            checks.append(
                Check(
                    "lock",
                    "fail",
                    f"{lock}: {exc.strerror or exc}",
                    "pass --lock with a readable lock file",
                )
            )
    torch_pin = _torch_pin(lock)
    if torch_pin is not None:
        pins["torch"] = torch_pin
    supported = _supported()
    for name in ("torch", *KEY_PACKAGES):
        checks.append(_package(name, pins.get(name), supported.get(name)))
    checks.append(_others(pins, supported))
    return checks


def _python() -> Check:
    here = ".".join(map(str, sys.version_info[:3]))
    try:
        needs = md.metadata("ictal")["Requires-Python"] or ""
    except md.PackageNotFoundError:
        needs = ""
    if sys.version_info[:2] != (3, 11):
        return Check(
            "python",
            "warn",
            f"{here}; the lock is for 3.11 (Ictal needs {needs})",
            "use Python 3.11 for the tested environment",
        )
    return Check("python", "ok", here)


def _torch_pin(lock: Path | None) -> str | None:
    """The torch version of ``requirements/torch.txt`` beside the lock (kept apart from it)."""
    if lock is None:
        return None
    path = lock.parent / TORCH_PIN.name
    try:
        return read_pins(path).get("torch")
    except OSError:
        return None


def _others(pins: dict[str, str], supported: dict[str, Requirement]) -> Check:
    """One row for every other locked package: how many match, which differ or are missing."""
    differ, missing = [], []
    for name, locked in sorted(pins.items()):
        if name in ("torch", *KEY_PACKAGES):
            continue
        have = _installed(name)
        if have is None:
            missing.append(name)
        elif _base(have) != _base(locked):
            differ.append(f"{name} {have} (lock {locked})")
    broken = [n for n in missing if n in supported]
    n = len(pins) - len([p for p in pins if p in ("torch", *KEY_PACKAGES)])
    if broken:
        return Check(
            "other packages",
            "fail",
            f"missing required: {', '.join(broken)}",
            "install the environment from the lock (make venv)",
        )
    if differ or missing:
        parts = ([f"{len(differ)} differ: " + ", ".join(differ[:4])] if differ else []) + (
            [f"{len(missing)} not installed: " + ", ".join(missing[:4])] if missing else []
        )
        return Check("other packages", "warn", f"of {n} locked: " + "; ".join(parts))
    return Check("other packages", "ok", f"{n} as locked" if n else "no lock to compare")


def device(wanted: str) -> Check:
    """The device the config would use, proven by a tiny real operation on it (and a
    convolution, which goes through cuDNN on CUDA)."""
    try:
        import torch
    except Exception as exc:  # a broken install: a missing library, an ABI mismatch
        return Check(
            "device",
            "fail",
            f"torch does not import: {exc}",
            "reinstall torch for this platform (requirements/torch.txt)",
        )
    if not torch.cuda.is_available():
        if wanted == "cuda":
            return Check(
                "device",
                "fail",
                "train.device=cuda but no CUDA device is usable",
                "use a GPU machine with its torch build, or train.device=cpu",
            )
        build = "CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build"
        return Check("device", "ok", f"cpu (torch {torch.__version__}, {build}, no CUDA device)")
    if wanted == "cpu":
        return Check("device", "ok", "cpu (train.device=cpu; a CUDA device is present)")
    try:
        x = torch.ones(1, 2, 16, device="cuda")
        conv = torch.nn.Conv1d(2, 2, 3).to("cuda")
        conv(x * 2).sum().item()
        torch.cuda.synchronize()
    except Exception as exc:  # the seed story: a CUDA extension that silently failed to load
        return Check(
            "device",
            "fail",
            f"CUDA is present but a tiny operation failed: {exc}",
            "install the torch build for this driver (requirements/torch.txt)",
        )
    name = torch.cuda.get_device_name(0)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return Check("device", "ok", f"cuda: {name}, CUDA {torch.version.cuda}, cuDNN {cudnn}")
