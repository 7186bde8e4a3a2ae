"""Hostile and broken inputs through the real command line: each gets its documented exit code
and one clear line naming the file or setting, never a traceback, and nothing outside the
configured roots is read, written or deleted (docs/robustness.md)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import fault_env, plant_victims, roots, run_ictal, tiny_training
from ictal.cache.manifest import sha256_bytes, table_bytes
from ictal.corpus.synth import synthesize

pytestmark = pytest.mark.slow  # real processes throughout; `make test-fast` skips them

FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=2", "train.heartbeat_s=0.5")


@dataclass(frozen=True)
class World:
    """A corpus, its cache, one trained run, and victim files outside every root."""

    tmp: Path
    corpus: Path
    cache: Path
    runs: Path
    run: Path
    victims: dict[Path, str]

    def sets(self, *extra: str) -> list[str]:
        return roots(self.corpus, self.cache, self.runs, *FAST, *extra)

    @property
    def key_dir(self) -> Path:
        (path,) = [p for p in self.cache.iterdir() if p.is_dir() and len(p.name) == 16]
        return path

    def intact(self) -> None:
        """Victim files exist with their content; nothing new appeared next to the roots."""
        for path, digest in self.victims.items():
            assert path.is_file(), f"{path} was deleted"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} changed"
        stray = {p.name for p in self.tmp.iterdir()} - EXPECTED_TOP
        assert not stray, f"files appeared outside the roots: {stray}"


EXPECTED_TOP = {"corpus", "cache", "runs", "victim.txt", "outside", "cases"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("hostile")
    synthesize(tmp / "corpus", patients=4, hours=0.5, seed=1)
    victims = plant_victims(tmp)
    (tmp / "cases").mkdir()
    w = World(tmp, tmp / "corpus", tmp / "cache", tmp / "runs", tmp, victims)
    res = run_ictal("build", "--workers", "1", *w.sets())
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_ictal("train", *w.sets())
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = list((tmp / "runs").iterdir())
    return World(tmp, w.corpus, w.cache, w.runs, run, victims)


def _case_dir(world: World, name: str) -> Path:
    path = world.tmp / "cases" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _binary(world: World) -> str:
    path = _case_dir(world, "binary") / "config.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    return str(path)


def _empty_last(world: World, content: bytes) -> str:
    """A copy of the trained run whose last.pt is ``content`` (empty or truncated)."""
    run = _case_dir(world, f"run-{len(content)}") / world.run.name
    shutil.copytree(world.run, run)
    (run / "checkpoints" / "last.pt").write_bytes(content)
    for hb in run.glob("heartbeat.json"):
        hb.write_text(json.dumps({"state": "stopped"}))
    return str(run)


def _bad_scores(world: World) -> str:
    path = _case_dir(world, "scores") / "eval-x-dev"
    path.mkdir()
    (path / "scores.json").write_text(
        json.dumps(
            {"split": "dev", "operating_points": [1, 2], "recordings": "nope", "n_recordings": {}}
        )
    )
    return str(path)


def _a_file(world: World) -> str:
    path = _case_dir(world, "file") / "not-a-dir"
    path.write_text("x")
    return str(path)


def _nonempty(world: World) -> str:
    path = _case_dir(world, "nonempty")
    (path / "thesis.tex").write_text("mine")
    return str(path)


CKPT = "{run}/checkpoints/last.pt"

# (id, argv template, expected exit code, fragment of stderr). Templates: {sets} expands to
# the world's --set list, {run} to the trained run, {x:name} to a helper's path.
CASES = [
    ("config-is-a-directory", ["census", "-c", "{tmp}"], 2, "is a directory"),
    ("config-is-binary", ["census", "-c", "{binary}"], 2, "is not text"),
    ("unknown-model", ["train", "{sets}", "--set", "model.name=nope"], 2, "model.name='nope'"),
    ("unknown-model-param", ["train", "{sets}", "--set", "model.params.bogus=1"], 2,
     "model.params: bogus"),
    ("non-numeric-model-param", ["train", "{sets}", "--set", "model.params.width=abc"], 2,
     "model.params"),
    ("window-longer-than-any-recording", ["train", "{sets}", "--set", "windows.length_s=99999"],
     2, "windows.length_s=99999 is longer than every recording"),
    ("all-sampler-ratios-zero", ["train", "{sets}", "--set", "sampler.partial=0", "--set",
                                 "sampler.full=0", "--set", "sampler.background=0"], 2,
     "sampler.partial=0"),
    ("no-seizure-draw", ["bench", "{sets}", "--set", "sampler.partial=0", "--set",
                         "sampler.full=0"], 2, "draws no seizure samples"),
    ("bogus-protocol-corpus", ["census", "bogus://x/corpus"], 2, "unknown storage protocol"),
    ("bogus-protocol-build", ["build", "{sets}", "--set", "corpus.root=bogus://x"], 2,
     "corpus.root bogus://x"),
    ("bogus-protocol-stage", ["stage", "{sets}", "--from", "bogus://x/caches"], 2,
     "unknown storage protocol"),
    ("bogus-protocol-publish", ["publish", "{sets}", "--to", "bogus://x/caches"], 2,
     "unknown storage protocol"),
    ("bogus-protocol-sink", ["train", "{sets}", "--set", "sink.url=bogus://x/runs"], 2,
     "sink.url bogus://x"),
    ("cache-root-in-proc", ["build", "{sets}", "--set", "cache.root=/proc/ictal-cache"], 2,
     "cache.root /proc/ictal-cache is not a writable directory"),
    ("cache-root-is-a-file", ["build", "{sets}", "--set", "cache.root={file}"], 2,
     "a file is in the way"),
    ("runs-root-is-a-file", ["train", "{sets}", "--set", "runs.root={file}"], 2,
     "runs.root"),
    ("evaluate-out-in-proc", ["evaluate", CKPT, "{sets}", "--split", "dev", "--out",
                              "/proc/ictal-out"], 2, "--out /proc/ictal-out"),
    ("census-json-in-proc", ["census", "{corpus}", "--json", "/proc/ictal/c.json"], 2, "--json"),
    ("empty-last-pt", ["train", "{sets}", "--run", "{empty_last}"], 3, "cannot be read"),
    ("truncated-last-pt", ["train", "{sets}", "--run", "{truncated_last}"], 3, "cannot be read"),
    ("scores-of-wrong-shape", ["report", "{bad_scores}"], 2, "shape ictal evaluate writes"),
    ("workers-zero", ["build", "{sets}", "--workers", "0"], 2, "--workers"),
    ("workers-negative", ["build", "{sets}", "--workers", "-1"], 2, "--workers"),
    ("synth-into-non-empty", ["synth", "{nonempty}"], 2, "is not empty"),
    ("split-unknown", ["evaluate", CKPT, "{sets}", "--split", "test"], 2, "--split"),
]  # fmt: skip


def _argv(world: World, template: list[str]) -> list[str]:
    values = {
        "tmp": str(world.tmp),
        "run": str(world.run),
        "corpus": str(world.corpus),
        "binary": _binary(world) if any("{binary}" in t for t in template) else "",
        "file": _a_file(world) if any("{file}" in t for t in template) else "",
        "empty_last": _empty_last(world, b"") if "{empty_last}" in template else "",
        "truncated_last": (
            _empty_last(world, (world.run / "checkpoints" / "last.pt").read_bytes()[:999])
            if "{truncated_last}" in template
            else ""
        ),
        "bad_scores": _bad_scores(world) if "{bad_scores}" in template else "",
        "nonempty": _nonempty(world) if "{nonempty}" in template else "",
    }
    out: list[str] = []
    for part in template:
        if part == "{sets}":
            out += world.sets()
        else:
            out.append(part.format(**values))
    return out


@pytest.mark.parametrize(("name", "template", "code", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input_table(world, name, template, code, fragment):
    res = run_ictal(*_argv(world, template))
    assert res.returncode == code, f"{name}: exit {res.returncode}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert fragment in res.stderr, res.stderr[-3000:]
    world.intact()


def _tamper_table(cache_dir: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite recordings.json with ``edit(rows)`` and the manifest's hash to match it, as an
    attacker who controls the whole cache directory would."""
    rows = json.loads((cache_dir / "recordings.json").read_text())
    edit(rows)
    data = table_bytes(rows)
    (cache_dir / "recordings.json").write_bytes(data)
    man = json.loads((cache_dir / "manifest.json").read_text())
    man["table"]["sha256"] = sha256_bytes(data)
    (cache_dir / "manifest.json").write_text(json.dumps(man))


def _copy_world_cache(world: World, name: str) -> tuple[Path, list[str]]:
    """A private copy of the committed cache under its own root, and the --set list for it."""
    root = _case_dir(world, name) / "cache"
    root.mkdir()
    shutil.copytree(world.key_dir, root / world.key_dir.name)
    sets = world.sets("cache.root=" + str(root))
    return root / world.key_dir.name, sets


def test_verify_full_refuses_an_array_outside_the_cache(world):
    cache_dir, sets = _copy_world_cache(world, "verify-escape")

    def escape(rows):  # type: ignore[no-untyped-def]
        rows[0]["array"] = "../../../../victim.txt"

    _tamper_table(cache_dir, escape)
    res = run_ictal("verify", "--full", *sets)
    assert res.returncode == 3, res.stderr
    assert "victim.txt" in res.stderr and "Traceback" not in res.stderr
    assert "not a relative path inside its directory" in res.stderr  # refused, not hashed
    world.intact()


def test_evaluate_never_writes_outside_out_because_of_a_recording_id(world):
    cache_dir, sets = _copy_world_cache(world, "evaluate-escape")

    def escape(rows):  # type: ignore[no-untyped-def]
        for r in rows:
            if r["split"] == "dev":
                r["id"] = "../../../../pwned"
                break

    _tamper_table(cache_dir, escape)
    out = world.tmp / "cases" / "evaluate-escape" / "out"
    res = run_ictal("evaluate", str(world.run / "checkpoints" / "last.pt"), *sets,
                    "--split", "dev", "--out", str(out))  # fmt: skip
    assert res.returncode == 3, res.stderr[-2000:]
    assert "pwned" in res.stderr and "Traceback" not in res.stderr
    assert not list(world.tmp.rglob("pwned*"))
    world.intact()


def test_gc_removes_only_what_ictal_made_and_never_follows_links(world):
    root = _case_dir(world, "gc") / "cache"
    shutil.copytree(world.cache, root, symlinks=True)
    thesis = root / "deadbeefdeadbeef" / "thesis.tex"
    thesis.parent.mkdir()
    thesis.write_text("four years of work")
    (root / "0123456789abcdef").symlink_to(world.tmp / "outside", target_is_directory=True)
    (root / "aaaaaaaaaaaaaaaa.building-x").mkdir()
    other = root / "bbbbbbbbbbbbbbbb"  # an ictal cache of another config: removable
    shutil.copytree(world.key_dir, other)
    man = json.loads((other / "manifest.json").read_text())
    man["key"] = "bbbbbbbbbbbbbbbb" + man["key"][16:]
    (other / "manifest.json").write_text(json.dumps(man))
    sets = world.sets(f"cache.root={root}")
    listing = run_ictal("gc", *sets)
    assert listing.returncode == 0, listing.stderr
    assert "not Ictal caches, left alone" in listing.stdout
    for name in ("deadbeefdeadbeef", "0123456789abcdef", "aaaaaaaaaaaaaaaa.building-x"):
        assert name in listing.stdout
    res = run_ictal("gc", "--yes", *sets)
    assert res.returncode == 0, res.stderr
    assert thesis.read_text() == "four years of work"
    assert (root / "0123456789abcdef").is_symlink() and (
        root / "aaaaaaaaaaaaaaaa.building-x"
    ).is_dir()
    assert not other.exists() and (root / world.key_dir.name / "manifest.json").is_file()
    world.intact()


def test_a_key_directory_without_manifest_is_named_not_rebuilt_forever(world):
    root = _case_dir(world, "broken") / "cache"
    shutil.copytree(world.key_dir, root / world.key_dir.name)
    (root / world.key_dir.name / "manifest.json").unlink()
    sets = world.sets(f"cache.root={root}")
    res = run_ictal("build", *sets)
    assert res.returncode == 3 and "holds no manifest.json" in res.stderr, res.stderr
    assert not list(root.glob("*.building-*")), "nothing is built into a dead end"
    explain = run_ictal("explain", *sets)
    assert explain.returncode == 3 and "broken commit" in explain.stdout
    gc = run_ictal("gc", "--yes", *sets)
    assert gc.returncode == 0 and "broken commit" in gc.stdout
    res = run_ictal("build", "--workers", "1", *sets)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (root / world.key_dir.name / "manifest.json").is_file()


def test_a_corrupt_committed_manifest_is_a_refusal_not_a_traceback(world):
    cache_dir, sets = _copy_world_cache(world, "corrupt")
    (cache_dir / "manifest.json").write_text('{"format_version": 1, "key": ')
    for cmd in ("build", "verify", "train"):
        res = run_ictal(cmd, *sets)
        assert res.returncode == 3, f"{cmd}: {res.stderr[-2000:]}"
        assert "manifest.json" in res.stderr and "Traceback" not in res.stderr


def test_explain_and_gc_on_a_read_only_shared_cache(world):
    env = fault_env("EROFS", f"{world.cache}/*")
    explain = run_ictal("explain", *world.sets(), env=env)
    assert explain.returncode == 0 and "exists" in explain.stdout, explain.stderr[-2000:]
    listing = run_ictal("gc", *world.sets(), env=env)
    assert listing.returncode == 0, listing.stderr[-2000:]
    # a removal on a read-only file system is refused naming the directory
    root = _case_dir(world, "ro-gc") / "cache"
    shutil.copytree(world.key_dir, root / world.key_dir.name)
    other = root / "cccccccccccccccc"
    shutil.copytree(world.key_dir, other)
    man = json.loads((other / "manifest.json").read_text())
    man["key"] = "cccccccccccccccc" + man["key"][16:]
    (other / "manifest.json").write_text(json.dumps(man))
    env = fault_env("EROFS", f"{root}/*")
    res = run_ictal("gc", "--yes", *world.sets(f"cache.root={root}"), env=env)
    assert res.returncode == 3 and "cannot remove" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and (other / "manifest.json").is_file()


def test_disk_full_during_build_keeps_finished_recordings(world, tmp_path):
    root = tmp_path / "cache"
    sets = world.sets(f"cache.root={root}")
    env = fault_env("ENOSPC", f"{root}/*/arrays/*", after=3)
    res = run_ictal("build", "--workers", "1", *sets, env=env)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "disk full" in res.stderr and "cache.root" in res.stderr
    assert "Traceback" not in res.stderr
    (building,) = root.glob("*.building-*")
    done = list((building / "records").glob("*.json"))
    assert len(done) >= 1, "recordings finished before the disk filled are kept"
    res = run_ictal("build", "--workers", "1", *sets)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{len(done)} skipped" in res.stdout


def test_disk_full_during_training_keeps_the_last_checkpoint(world, tmp_path):
    runs = tmp_path / "runs"
    sets = world.sets(f"runs.root={runs}", "train.epochs=3", "train.checkpoint_every_s=0.001")
    env = fault_env("ENOSPC", f"{runs}/*/checkpoints/*", after=4)
    res = run_ictal("train", *sets, env=env)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "disk full" in res.stderr and "runs.root" in res.stderr
    assert "Traceback" not in res.stderr
    (run,) = runs.iterdir()
    assert (run / "checkpoints" / "last.pt").is_file(), "the last good checkpoint stays"
    res = run_ictal("train", *sets, "--resume")
    assert res.returncode == 0, res.stderr[-2000:]


def test_markup_in_labels_is_printed_as_text(world, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(world.corpus, corpus)
    victim = sorted(corpus.rglob("*.csv_bi"))[0]
    victim.write_text(victim.read_text().replace("bckg", "[/bold]", 1))
    sets = world.sets(f"corpus.root={corpus}", f"cache.root={tmp_path / 'cache'}",
                      "cache.max_failed_fraction=0.5")  # fmt: skip
    census = run_ictal("census", str(corpus))
    assert census.returncode == 4 and "[/bold]" in census.stdout, census.stderr[-2000:]
    build = run_ictal("build", "--workers", "1", *sets)
    assert build.returncode == 4 and "[/bold]" in build.stdout, build.stderr[-2000:]
    verify = run_ictal("verify", *sets)
    assert verify.returncode == 0 and "[/bold]" in verify.stdout, verify.stderr[-2000:]
    for res in (census, build, verify):
        assert "Traceback" not in res.stderr


def test_credentials_in_urls_never_printed_nor_stored(world, tmp_path):
    secret = "S3CR3T-PASSWORD"
    runs = tmp_path / "runs"
    sets = world.sets(
        f"runs.root={runs}",
        f"cache.remote=s3://user:{secret}@results/caches?X-Amz-Signature={secret}",
    )
    res = run_ictal("train", *sets)
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = runs.iterdir()
    for path in run.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".yaml", ".log", ".jsonl"):
            assert secret not in path.read_text(errors="replace"), path
    from ictal.models.checkpoint import load_checkpoint

    assert secret not in json.dumps(load_checkpoint(run / "checkpoints" / "last.pt")["config"])
    bad = run_ictal("census", f"http://user:{secret}@127.0.0.1:9/corpus")
    assert bad.returncode in (2, 3) and secret not in bad.stderr + bad.stdout
    assert "***" in bad.stderr, bad.stderr
    sink = run_ictal("train", *world.sets(f"sink.url=http://user:{secret}@127.0.0.1:9/runs"))
    assert sink.returncode in (2, 3) and secret not in sink.stderr + sink.stdout


def test_synth_refuses_a_non_empty_directory_unless_forced(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = run_ictal("synth", str(out), "--patients", "2", "--hours", "0.05")
    assert res.returncode == 2 and "--force" in res.stderr
    res = run_ictal("synth", str(out), "--patients", "2", "--hours", "0.05", "--force")
    assert res.returncode == 0, res.stderr
    assert (out / "notes.txt").read_text() == "mine" and (out / "edf").is_dir()


def test_unknown_labels_and_paths_in_messages_are_plain(world):
    """Markup in a path (a directory named like a rich tag) is printed as it is."""
    tag = world.tmp / "cases" / "[red]x[/red]"
    shutil.rmtree(tag, ignore_errors=True)
    res = run_ictal("census", str(tag))
    assert res.returncode == 2 and "[red]x[/red]" in res.stderr
    assert "Traceback" not in res.stderr


def test_exit_code_table_is_in_the_help():
    res = run_ictal("--help")
    assert res.returncode == 0
    assert "130 interrupted" in " ".join(res.stdout.split())


def test_os_environ_is_left_alone():
    assert "ICTAL_FAULT_ERRNO" not in os.environ
