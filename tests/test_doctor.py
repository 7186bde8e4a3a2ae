"""`ictal doctor` through the real command line: all good, a missing cache, a cache that
`ictal stage` can fetch, an unwritable sink on a loopback S3, and torch versions other than
the lock's (a supported one warns, an unsupported one fails)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import ictal_env, run_ictal, settings, small_built_corpus, torchless_env

pytestmark = pytest.mark.slow

FAST = ["windows.length_s=8", "windows.stride_s=4"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return small_built_corpus(tmp_path_factory.mktemp("doctor"), 11, FAST)


def _rows(stdout: str) -> dict[str, str]:
    """check name -> status, from the printed table."""
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│|").split("│")]
        if len(cells) >= 3 and cells[1] in ("ok", "warn", "fail", "skip"):
            out[cells[0]] = cells[1]
    return out


def test_all_good_for_train_and_build(built):
    for command in ("train", "build"):
        res = run_ictal("doctor", "--for", command, *settings(built, "runs", FAST))
        assert res.returncode == 0, res.stdout + res.stderr
        rows = _rows(res.stdout)
        assert rows["python"] == "ok" and rows["torch"] == "ok"
        assert rows["device"] == ("ok" if command == "train" else "skip"), res.stdout
        assert rows["corpus"] == "ok" and rows["cache.root"] == "ok", res.stdout
        assert res.stdout.startswith(f"ictal doctor: ready for `ictal {command}`"), res.stdout
        assert rows["cache"] == ("ok" if command == "train" else "skip"), res.stdout


def test_commands_without_torch_are_ready_without_it(built, tmp_path):
    """A machine whose torch does not import still builds and stages; doctor says ready for
    them (without trying torch) and not ready for training."""
    env, tried = torchless_env(tmp_path)
    fresh = f"cache.root={tmp_path / 'cache'}"
    res = run_ictal("build", *settings(built, "runs", FAST, fresh), env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    for command in ("build", "stage"):  # stage fails here only for want of a cache.remote
        res = run_ictal("doctor", "--for", command, *settings(built, "runs", FAST, fresh),
                        env=env)  # fmt: skip
        rows = _rows(res.stdout)
        assert rows["device"] == "skip" and "without torch" in res.stdout, res.stdout
        assert [k for k, v in rows.items() if v == "fail"] == (
            [] if command == "build" else ["cache.remote"]
        ), res.stdout
    assert not tried.exists(), "a command that runs without torch tried to import it"
    res = run_ictal("doctor", "--for", "train", *settings(built, "runs", FAST, fresh), env=env)
    assert res.returncode == 3 and _rows(res.stdout)["device"] == "fail", res.stdout
    assert "torch does not import" in res.stdout and "Traceback" not in res.stderr


def test_a_missing_cache_fails_with_the_fix(built, tmp_path):
    res = run_ictal("doctor", *settings(built, "runs", FAST, f"cache.root={tmp_path / 'empty'}"))
    assert res.returncode == 3, res.stdout + res.stderr
    assert _rows(res.stdout)["cache"] == "fail"
    assert "ictal build" in res.stdout and "Traceback" not in res.stderr
    title = res.stdout.splitlines()[0]  # never "ready" above a failed check
    assert title.startswith("ictal doctor: NOT ready for `ictal train`: 1 check(s) failed"), title
    assert not (tmp_path / "empty").exists(), "doctor made the directory it checked"


def test_a_local_sink_not_made_yet_is_writable_and_stays_unmade(built, tmp_path):
    sink = tmp_path / "sinks" / "exp-1"
    res = run_ictal("doctor", *settings(built, "runs", FAST, f"sink.url={sink}"))
    assert res.returncode == 0 and _rows(res.stdout)["sink.url"] == "ok", res.stdout
    assert not sink.exists() and not (tmp_path / "sinks").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ictal")], "probe left"


def test_build_without_a_corpus_fails(built, tmp_path):
    nowhere = f"corpus.root={tmp_path / 'nowhere'}"
    res = run_ictal("doctor", "--for", "build", *settings(built, "runs", FAST, nowhere))
    assert res.returncode == 3 and _rows(res.stdout)["corpus"] == "fail", res.stdout


def test_a_published_cache_is_a_warning_and_a_missing_bucket_fails(built, tmp_path, s3):
    env = ictal_env(s3)
    remote = f"cache.remote=s3://results/doctor-{os.getpid()}"
    res = run_ictal("publish", *settings(built, "runs", FAST, remote), env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    elsewhere = [f"cache.root={tmp_path / 'fresh'}", f"corpus.root={tmp_path / 'unreachable'}"]
    res = run_ictal("doctor", *settings(built, "runs", FAST, remote, *elsewhere), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _rows(res.stdout)["cache"] == "warn" and "ictal stage" in res.stdout
    res = run_ictal("doctor", "--for", "stage", *settings(built, "runs", FAST, remote, *elsewhere),
                    env=env)  # fmt: skip
    assert res.returncode == 0 and _rows(res.stdout)["cache.remote"] == "ok", res.stdout

    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
    res = run_ictal("doctor", *settings(built, "runs", FAST, "sink.url=s3://no-such-bucket/runs"),
                    env=ictal_env({**s3, "AWS_SECRET_ACCESS_KEY": secret}))  # fmt: skip
    assert res.returncode == 3, res.stdout + res.stderr
    assert _rows(res.stdout)["sink.url"] == "fail", res.stdout
    assert secret not in res.stdout + res.stderr and "Traceback" not in res.stderr


def _fake_torch(tmp_path: Path, version: str) -> dict[str, str]:
    """An environment where pip's record says torch is ``version`` (a dist-info found first)."""
    site = tmp_path / f"site-{version}"
    info = site / f"torch-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
    env = ictal_env()
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"
    return env


def test_torch_other_than_the_lock_warns_and_unsupported_fails(tmp_path):
    res = run_ictal("doctor", "--env-only", env=_fake_torch(tmp_path, "2.2.2"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert _rows(res.stdout)["torch"] == "warn" and "the lock has 2.13.0" in res.stdout
    res = run_ictal("doctor", "--env-only", env=_fake_torch(tmp_path, "1.13.1"))
    assert res.returncode == 3, res.stdout + res.stderr
    assert _rows(res.stdout)["torch"] == "fail" and "outside" in res.stdout
    assert "torch" in res.stderr and "Traceback" not in res.stderr
