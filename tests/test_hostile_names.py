"""Names, links and credentials from untrusted places (docs/robustness.md, "Names, links and
credentials"): run names from URLs and sink listings are plain names, nothing outside the
configured roots is read, quoted, copied or deleted through a symbolic link, no credential is
printed or stored whatever form a library quotes it in, and a continued run pushes only to the
sink given now. Real files, real links, moto's S3 server on loopback, the real command line."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import string
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pytest

from conftest import plant_victims, run_ictal, settings, tiny_training
from ictal.corpus.synth import synthesize
from ictal.errors import UnsafePathError
from ictal.io.paths import is_inside, linked_below, literal_entry, own_file
from ictal.io.redact import MASK, note_url, redact, redact_tree
from ictal.runs.sink import check_sink, is_run_name, run_url

# ----------------------------------------------------------------------------- redaction

SECRET = "Zq7xW2pLk9"  # a password piece that no ordinary text holds

# Every form a credential reaches a message in, with the secret that must not survive.
LEAKS = [
    f"s3://user:{SECRET}@bucket/runs",
    f"s3://user:p@ss{SECRET}@bucket/runs",  # '@' in the password
    f"s3://user:ab/{SECRET}:x@bucket/runs",  # '/' and ':' in the password
    f"gs://{SECRET}@bucket/x",  # a token as the whole userinfo
    f"https://user:p%40{SECRET}%2Fx@host/path",  # URL-encoded password
    f"next=s3%3A%2F%2Fuser%3A{SECRET}%40bucket%2Fkey&x=1",  # a whole URL-encoded URL
    f'Invalid bucket name "AKIAUSER:{SECRET}@bucket": Bucket name must match',  # no scheme
    f"could not reach user:ab/{SECRET}@bucket today",
    f"https://b.s3.amazonaws.com/k?X-Amz-Credential={SECRET}%2F20240101&X-Amz-Signature=abc",
    f"https://b.s3.amazonaws.com/k?X-Amz-Signature={SECRET}&X-Amz-Expires=60",
    f"the request X-Amz-Security-Token={SECRET} expired",
    f"https://acct.blob.core.windows.net/c/x?sv=2020&sig={SECRET}",
    f"https://h/x?access_token={SECRET}",
    f"headers {{'Authorization': 'AWS4-HMAC-SHA256 Credential=AKIA/x, Signature={SECRET}'}}",
    f"Authorization: Bearer {SECRET}.abc",
    f"aws_secret_access_key = {SECRET}",
    f'{{"password": "{SECRET}"}}',
    f"db_password={SECRET}",
    "key AKIAIOSFODNN7EXAMPLE was used",  # an AWS access key id alone
    "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY in a text",  # an AWS-shaped secret
]

# Ordinary text that must come out as it went in.
PLAIN = [
    "ictal key16 0123456789abcdef a=b train.seed=1 sink.url=None",
    "held by host-1:12345; run 20240101T000000Z-abcdef",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "git commit da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "mail user@example.com; git@github.com:org/repo.git",
    "http://host:8080/x s3://bucket/dir/file.edf https://example.org/a?b=c&d=e",
    'recording {"token": "t000", "session": "s001_2003_01_01"}',
    "monkey=3 max_tokens=5 keyboard: yes; the secretary: Bob",
    "edf/train/aaaaaaaa/s001_2003_01_01/01_tcp_ar/aaaaaaaa_s001_t000.edf",
    "/data/TUSZ/v2.0.3/edf/dev/Some/Path/With/Many/Parts/file.csv_bi",
    "windows.length_s=8 windows.stride_s=4 model.params={width: 8, gru_hidden: 8}",
]


@pytest.mark.parametrize("text", LEAKS)
def test_every_credential_form_is_masked(text):
    out = redact(text)
    assert MASK in out, out
    for piece in (SECRET, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"):
        assert piece not in out, out
    assert redact(out) == out  # masking twice changes nothing


@pytest.mark.parametrize("text", PLAIN)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def _word(rng: random.Random, alphabet: str, lo: int, hi: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def test_generated_passwords_never_survive_in_any_form():
    """600 random passwords (with '@', ':', '/', '%', '+'), each in URLs with and without a
    scheme, URL-encoded, as a query value, a header and a labelled value."""
    from urllib.parse import quote

    rng = random.Random(20240611)
    for _ in range(600):
        secret = _word(rng, string.ascii_letters + string.digits, 10, 20)
        noise = "@:/%+-_."
        password = "".join(c + (rng.choice(noise) if rng.random() < 0.3 else "") for c in secret)
        user = _word(rng, string.ascii_letters + string.digits, 3, 20)
        host = _word(rng, string.ascii_lowercase, 3, 12)
        forms = [
            f"s3://{user}:{password}@{host}/runs/x",
            f"error: {user}:{password}@{host} refused",
            f'"{user}:{password}@{host}"',
            f"https://{user}:{quote(password, safe='')}@{host}/x",
            "u=" + quote(f"s3://{user}:{quote(password, safe='')}@{host}/k", safe=""),
            f"https://{host}/k?X-Amz-Signature={quote(password, safe='')}&a=b",
            f"Authorization: Bearer {password}",
            f"password={quote(password, safe='')}",
        ]
        for form in forms:
            out = redact(form)
            assert secret not in out.replace(MASK, ""), (form, out)
            assert redact(out) == out, form


def test_generated_ordinary_text_is_never_eaten():
    """2,000 ordinary strings (config diffs, paths, ids, digests, host:pid) come out whole."""
    rng = random.Random(7)
    lower = string.ascii_lowercase
    for _ in range(2000):
        kind = rng.randrange(7)
        if kind == 0:
            text = f"{_word(rng, lower, 2, 9)}.{_word(rng, lower + '_', 2, 12)}={rng.random():.3f}"
        elif kind == 1:
            parts = [_word(rng, lower + string.digits + "_-", 1, 12) for _ in range(6)]
            text = "/" + "/".join(parts) + rng.choice([".edf", ".csv_bi", ".json", ""])
        elif kind == 2:
            text = hashlib.sha256(str(rng.random()).encode()).hexdigest()[
                : rng.choice([16, 40, 64])
            ]
        elif kind == 3:
            text = f"{_word(rng, lower + '-', 3, 12)}:{rng.randint(1, 99999)}"
        elif kind == 4:
            text = f"{_word(rng, lower, 3, 8)}@{_word(rng, lower, 3, 8)}.org"
        elif kind == 5:
            text = f"s3://{_word(rng, lower, 3, 10)}/{_word(rng, lower + '/', 1, 30)}"
        else:
            text = " ".join(_word(rng, string.ascii_letters, 1, 10) for _ in range(8))
        assert redact(text) == text, text


def test_credentials_of_an_opened_url_are_masked_where_a_library_cuts_them():
    note_url("s3://AKIAUSERNAMEX:Vr/9kQ2mZt@bucket/runs")
    # botocore names the bucket as s3fs split it: at the '/' of the password
    out = redact('Invalid bucket name "AKIAUSERNAMEX:Vr": must match')
    assert "AKIAUSERNAMEX" not in out and MASK in out
    assert "9kQ2mZt" not in redact("key 9kQ2mZt@bucket/runs not found")


def test_credential_environment_values_are_masked(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-3f9a8b7c6d5e")
    monkeypatch.setenv("SHORT_SECRET", "testing")  # too short to mask ordinary words
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/home/me/keys/service.json")
    assert redact("sent tok-3f9a8b7c6d5e to the server") == f"sent {MASK} to the server"
    assert redact("testing the thing") == "testing the thing"
    assert redact("read /home/me/keys/service.json") == "read /home/me/keys/service.json"
    assert redact_tree({"a": ["x tok-3f9a8b7c6d5e"]}) == {"a": [f"x {MASK}"]}


# ----------------------------------------------------------------------------- names and links


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("s3://b/runs/20240101T000000Z-abcdef", True),
        ("s3://b/runs/r1/", True),
        ("../sink/r1", True),  # a local path may climb; its last part names the run
        ("s3://b/f4/..", False),
        ("s3://b/f4/.", False),
        ("s3://b/f4/../r1", False),  # object keys are literal: '..' is refused anywhere
        ("/x/good/..", False),
        ("/x/good/.", False),
        ("s3://b/", False),
        ("s3://b/runs/.hidden", False),
    ],
)
def test_pull_url_names_one_run(url, ok):
    if ok:
        assert is_run_name(run_url(url)[1])
    else:
        with pytest.raises(UnsafePathError):
            run_url(url)


def test_a_sink_takes_only_run_names(tmp_path):
    for bad in ("..", "r1/..", "r1/.", "r1/", "../../x", "", "r1//eval", "a/b/c", "r1/a\\b"):
        with pytest.raises(UnsafePathError):
            check_sink(str(tmp_path / "sink"), bad)
    assert not (tmp_path / "x").exists() and not (tmp_path / "sink").exists()
    check_sink(str(tmp_path / "sink"), "r1/eval-last-dev")
    check_sink(str(tmp_path / "sink"), "r1/my evaluation")  # --out names as the user chose


def test_link_rules(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    (outside / "f").write_text("x")
    (root / "d" / "f").write_text("x")
    (root / "in").symlink_to(root / "d" / "f")
    (root / "out").symlink_to(outside / "f")
    (root / "dl").symlink_to(outside, target_is_directory=True)
    assert is_inside(root / "in", root) and not is_inside(root / "out", root)
    assert not is_inside(root / "dl" / "f", root)
    assert linked_below(root, root / "d" / "f") is None
    assert linked_below(root, root / "dl" / "f") == root / "dl"
    assert linked_below(root, root / "out") == root / "out"
    assert own_file(root, root / "d" / "f") and not own_file(root, root / "in")
    assert not own_file(root, root / "dl" / "f")
    assert literal_entry("/data/ref/a.csv_bi") is None
    for entry in ("$HOME/a.csv_bi", "/x/${AWS_SECRET_ACCESS_KEY}.csv_bi", "~/a.csv_bi",
                  "file://~/a.edf"):  # fmt: skip
        assert literal_entry(entry) is not None, entry


# ----------------------------------------------------------------------------- the real CLI

FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=2", "train.heartbeat_s=0.5")
EXPECTED_TOP = {"corpus", "cache", "runs", "sink", "victim.txt", "outside", "cases"}
# A credential a user put in a URL: '/' in its password, so s3fs cuts the bucket name there.
KEY_ID, PASSWORD = "AKIAUSERNAME1", "SE/CRxx9pw"
CRED_URL = f"s3://{KEY_ID}:{PASSWORD}@results/caches"
LEAKED = (KEY_ID, "CRxx9pw", PASSWORD, "p@ssW0rd9x", "ssW0rd9x")


@dataclass(frozen=True)
class World:
    """A corpus, its cache, a run pushed to S3 (and copied to a local sink), victim files."""

    tmp: Path
    run: Path
    sink: str  # the S3 sink the run was pushed to
    victims: dict[Path, str]

    def sets(self, *extra: str) -> list[str]:
        return settings(self.tmp, "runs", FAST, *extra)

    def case(self, name: str) -> Path:
        path = self.tmp / "cases" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def intact(self) -> None:
        """Victim files exist unchanged, the outside folder holds only them, and nothing
        appeared beside the roots."""
        for path, digest in self.victims.items():
            assert path.is_file() and not path.is_symlink(), f"{path} was replaced"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} changed"
        assert sorted(os.listdir(self.tmp / "outside")) == ["keep.txt"]
        stray = {p.name for p in self.tmp.iterdir()} - EXPECTED_TOP
        assert not stray, f"files appeared outside the roots: {stray}"


def _s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", skip_instance_cache=True)


def _ok(res, code: int = 0) -> None:  # type: ignore[no-untyped-def]
    assert res.returncode == code, (
        f"exit {res.returncode}\n{res.stdout[-1500:]}\n{res.stderr[-3000:]}"
    )
    assert "Traceback" not in res.stderr, res.stderr[-3000:]


@pytest.fixture(scope="module")
def world(s3, tmp_path_factory) -> World:
    from ictal.runs.pusher import Pusher

    tmp = tmp_path_factory.mktemp("names")
    synthesize(tmp / "corpus", patients=3, hours=0.4, seed=3)
    victims = plant_victims(tmp)
    (tmp / "cases").mkdir()
    w = World(tmp, tmp, "s3://results/names/runs", victims)
    _ok(run_ictal("build", "--workers", "1", *w.sets()))
    # the run carries a credential in a URL it never needs: every stored copy must mask it
    _ok(run_ictal("train", *w.sets(f"sink.url={w.sink}", f"cache.remote={CRED_URL}")))
    (run,) = (tmp / "runs").iterdir()
    Pusher(run, str(tmp / "sink"), run.name).close(final=True)  # a local sink's copy too
    return World(tmp, run, w.sink, victims)


@pytest.mark.slow
def test_no_stored_file_of_a_run_or_its_pushed_copies_holds_a_credential(world):
    fs = _s3()
    stored = {str(p): p.read_bytes() for p in world.run.rglob("*") if p.is_file()}
    stored.update({p: fs.cat_file(p) for p in fs.find(f"{world.sink[5:]}/{world.run.name}")})
    assert any(MASK.encode() in data for data in stored.values())  # the URL is there, masked
    for name, data in stored.items():
        for piece in LEAKED:
            assert piece.encode() not in data, (name, piece)


PULL_REFUSED = [
    ("{sink}/{run}/..", "'..' is not a plain name"),
    ("{sink}/{run}/.", "'.' is not a plain name"),
    ("{sink}/../runs/{run}", "is no pushed run"),
    ("s3://results", "is no pushed run"),
    ("s3://results/names", "is not a pushed run"),
    ("{local}/{run}/..", "'..' is not a plain name"),
    ("{local}/{run}/./", "'.' is not a plain name"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("template", "fragment"), PULL_REFUSED)
def test_pull_refuses_a_url_that_names_no_run(world, template, fragment):
    url = template.format(sink=world.sink, run=world.run.name, local=world.tmp / "sink")
    before = sorted(os.listdir(world.tmp / "runs"))
    res = run_ictal("pull", url, *world.sets())
    _ok(res, 3)
    assert fragment in res.stderr
    assert sorted(os.listdir(world.tmp / "runs")) == before
    world.intact()


@pytest.mark.slow
def test_pull_skips_objects_whose_names_climb_and_takes_the_rest(world):
    fs = _s3()
    base = "results/names/f4"
    for key, body in (("heartbeat.json", b'{"state": "done"}'), ("config.yaml", b"{}\n"),
                      ("../heartbeat.json", b"{}"), ("../../evil.py", b"print(1)"),
                      ("sub/../../../evil2.py", b"print(2)"), ("./dot.txt", b"x")):  # fmt: skip
        fs.pipe_file(f"{base}/{key}", body)
    res = run_ictal("pull", "s3://results/names/f4", *world.sets())
    _ok(res, 4)
    for name in ("../heartbeat.json", "../../evil.py", "evil2.py", "./dot.txt"):
        assert "not pulled: s3://results/names/f4/" in res.stderr and name in res.stderr, name
    dest = world.tmp / "runs" / "f4"
    assert sorted(p.name for p in dest.iterdir()) == [".pull.json", "config.yaml",
                                                       "heartbeat.json"]  # fmt: skip
    assert not list(world.tmp.rglob("evil*")) and not list(world.tmp.rglob("dot.txt"))
    world.intact()
    shutil.rmtree(dest)


@pytest.mark.slow
def test_pull_never_follows_copies_or_keeps_a_link(world):
    sink = world.case("linked-sink")
    shutil.copytree(world.tmp / "sink" / world.run.name, sink / world.run.name)
    (sink / world.run.name / "stolen.txt").symlink_to(world.tmp / "victim.txt")
    (sink / world.run.name / "sub").mkdir()
    (sink / world.run.name / "sub" / "up").symlink_to(world.tmp / "outside")
    url, dest = str(sink / world.run.name), world.case("pulled") / "run"
    res = run_ictal("pull", url, str(dest), *world.sets())
    _ok(res, 4)
    assert res.stderr.count("a symbolic link in the sink") == 2, res.stderr
    assert not (dest / "stolen.txt").exists() and not (dest / "sub").exists()
    assert (dest / "checkpoints" / "last.pt").is_file()
    # a link left in DEST: its place is never written through, the file never kept as a link
    shutil.rmtree(dest / "checkpoints")
    (dest / "checkpoints").symlink_to(world.tmp / "outside", target_is_directory=True)
    (dest / "metrics.jsonl").unlink()
    (dest / "metrics.jsonl").symlink_to(world.tmp / "victim.txt")
    res = run_ictal("pull", url, str(dest), *world.sets())
    _ok(res, 4)
    assert "lies behind the symbolic link" in res.stderr and "checkpoints/last.pt" in res.stderr
    assert own_file(dest, dest / "metrics.jsonl")
    assert (dest / "metrics.jsonl").read_bytes() == (world.run / "metrics.jsonl").read_bytes()
    world.intact()
    # DEST itself a link: refused before anything is written
    (world.tmp / "cases" / "pulled" / "alias").symlink_to(world.tmp / "outside")
    res = run_ictal("pull", url, str(world.tmp / "cases" / "pulled" / "alias"), *world.sets())
    _ok(res, 3)
    assert "is a symbolic link" in res.stderr
    world.intact()


@pytest.mark.slow
def test_a_file_that_fails_the_hash_check_is_never_kept_as_a_link(world):
    sink = world.case("marker-sink") / world.run.name
    shutil.copytree(world.tmp / "sink" / world.run.name, sink)
    marker = json.loads((sink / "_PUSHED.json").read_text())
    victim = world.tmp / "victim.txt"
    marker["files"].append({"path": "notes.txt", "bytes": victim.stat().st_size,
                            "sha256": world.victims[victim]})  # fmt: skip
    (sink / "_PUSHED.json").write_text(json.dumps(marker))
    dest = world.case("marker-pulled") / "run"
    dest.mkdir()
    (dest / "notes.txt").symlink_to(victim)  # a link whose target matches the marker
    res = run_ictal("pull", str(sink), str(dest), *world.sets())
    _ok(res, 3)
    assert "differs from its _PUSHED.json" in res.stderr and "notes.txt" in res.stderr
    assert not (dest / "notes.txt").exists() and not (dest / "notes.txt").is_symlink()
    assert (dest / "config.yaml").is_file()  # what was fetched stays
    world.intact()


@pytest.mark.slow
def test_status_lists_run_names_only_and_follows_no_link(world):
    fs = _s3()
    for key in ("stat/r1/heartbeat.json", "stat/../heartbeat.json", "stat//heartbeat.json"):
        fs.pipe_file(f"results/names/{key}", json.dumps({"state": "done", "time": 1}).encode())
    res = run_ictal("status", "s3://results/names/stat", "--json")
    _ok(res)
    assert [r["run"] for r in json.loads(res.stdout)] == ["r1"]
    assert "'..' is not a run name" in res.stderr
    runs = world.case("status-runs")
    shutil.copytree(world.run, runs / "real")
    shutil.copytree(world.run, runs / "beat-linked")
    (runs / "beat-linked" / "heartbeat.json").unlink()
    (runs / "beat-linked" / "heartbeat.json").symlink_to(world.run / "heartbeat.json")
    (runs / "dir-linked").symlink_to(world.run, target_is_directory=True)
    res = run_ictal("status", str(runs), "--json")
    _ok(res)
    rows = {r["run"]: r for r in json.loads(res.stdout)}
    assert sorted(rows) == ["beat-linked", "real"]
    assert rows["real"]["status"] == "done"
    assert rows["beat-linked"]["status"] == "unknown"
    assert "symbolic link" in rows["beat-linked"]["detail"]
    world.intact()


@pytest.mark.slow
def test_report_evaluate_and_resume_never_read_run_files_through_a_link(world):
    copy = world.case("linked-run") / world.run.name
    shutil.copytree(world.run, copy)
    fake = world.tmp / "cases" / "linked-run" / "elsewhere.jsonl"
    fake.write_text('{"phase": "train", "epoch": 0, "step": 1, "time": 1, "loss": 12345.678}\n')
    (copy / "metrics.jsonl").unlink()
    (copy / "metrics.jsonl").symlink_to(fake)
    _ok(run_ictal("report", str(copy), *world.sets()))
    page = (copy / "report.html").read_text()
    assert "is a symbolic link: not read" in page
    before = fake.read_bytes()
    res = run_ictal("train", "--run", str(copy), *world.sets())  # would trim and append to it
    _ok(res, 3)
    assert "metrics.jsonl is a symbolic link" in res.stderr and fake.read_bytes() == before
    (copy / "config.yaml").unlink()
    (copy / "config.yaml").symlink_to(world.run / "config.yaml")
    for argv in (["train", "--run", str(copy)], ["evaluate", str(copy / "checkpoints" / "last.pt"),
                                                  "--split", "dev"]):  # fmt: skip
        res = run_ictal(*argv, *world.sets())
        _ok(res, 3)
        assert "config.yaml" in res.stderr and "link" in res.stderr, res.stderr
    # --resume never picks a run directory that is a link (it would train into its target)
    linked_root = world.case("linked-root")
    (linked_root / world.run.name).symlink_to(world.run, target_is_directory=True)
    from ictal.runs.resume import find_resumable

    assert find_resumable(linked_root) is None
    world.intact()


@pytest.mark.slow
def test_gc_never_deletes_a_directory_whose_manifest_is_a_link(world):
    root = world.case("gc") / "cache"
    (key_dir,) = [p for p in (world.tmp / "cache").iterdir() if len(p.name) == 16]
    shutil.copytree(key_dir, root / key_dir.name)
    trap = root / "cccccccccccccccc"
    trap.mkdir()
    (trap / "thesis.tex").write_text("four years of work")
    man = json.loads((key_dir / "manifest.json").read_text())
    man["key"] = "cccccccccccccccc" + man["key"][16:]
    forged = world.tmp / "cases" / "gc" / "forged-manifest.json"
    forged.write_text(json.dumps(man))
    (trap / "manifest.json").symlink_to(forged)
    sets = world.sets(f"cache.root={root}")
    listing = run_ictal("gc", *sets)
    _ok(listing)
    assert "identity file is a symbolic link" in " ".join(listing.stdout.split())
    _ok(run_ictal("gc", "--yes", *sets))
    assert (trap / "thesis.tex").read_text() == "four years of work" and forged.is_file()
    world.intact()


@pytest.mark.slow
def test_census_reads_links_inside_the_corpus_and_never_through_one_leading_out(world):
    corpus = world.case("linked-corpus") / "corpus"
    shutil.copytree(world.tmp / "corpus", corpus)
    edfs = sorted(corpus.rglob("*.edf"))
    leaked = world.tmp / "cases" / "linked-corpus" / "private.csv_bi"
    leaked.write_text("TOPSECRET-LINE, not an annotation\n")
    labels = edfs[0].with_suffix(".csv_bi")
    labels.unlink()
    labels.symlink_to(leaked)  # leads out: that recording is unusable, nothing read
    store = corpus / "store"
    store.mkdir()
    shutil.move(edfs[1], store / edfs[1].name)
    edfs[1].symlink_to(store / edfs[1].name)  # inside the corpus: read like the file
    (corpus / "edf" / "train" / "zzzzzzzz").symlink_to(world.tmp / "outside")
    out = world.tmp / "cases" / "linked-corpus" / "census.json"
    res = run_ictal("census", str(corpus), "--json", str(out))
    _ok(res, 4)
    doc = json.loads(out.read_text())
    reasons = {u["file"]: u["reason"] for u in doc["unusable"]}
    assert list(reasons) == sorted([edfs[0].relative_to(corpus).as_posix(),
                                    "edf/train/zzzzzzzz"])  # fmt: skip
    assert "leading out of the corpus" in reasons[edfs[0].relative_to(corpus).as_posix()]
    assert "a symbolic link to a directory" in reasons["edf/train/zzzzzzzz"]
    assert sum(doc["usable_files"].values()) == len(edfs) - 1
    for text in (res.stdout, res.stderr, out.read_text()):
        assert "TOPSECRET" not in text
    world.intact()


@pytest.mark.slow
def test_a_bids_participants_table_leading_out_is_refused(world):
    root = world.case("bids") / "bids"
    _ok(run_ictal("synth", str(root), "--format", "bids", "--patients", "2", "--hours", "0.1"))
    table = world.tmp / "cases" / "bids" / "elsewhere.tsv"
    shutil.move(root / "participants.tsv", table)
    (root / "participants.tsv").symlink_to(table)
    res = run_ictal("census", str(root))
    _ok(res, 2)
    assert "participants.tsv: a symbolic link leading out of the corpus" in res.stderr
    world.intact()


@pytest.mark.slow
def test_score_lists_never_expand_the_environment(world):
    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEYX"
    ref = world.case("score") / "ref.list"
    ref.write_text("/x/${AWS_SECRET_ACCESS_KEY}.csv_bi\n")
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": secret, "PYTHONPATH": os.environ.get(
        "PYTHONPATH", "")}  # fmt: skip
    from conftest import ictal_env

    res = run_ictal("score", str(ref), str(ref), env=ictal_env(env))
    _ok(res, 2)
    assert "ref.list: line 1:" in res.stderr and "does not expand" in res.stderr
    assert secret not in res.stdout + res.stderr


CRED_URLS = (f"s3://{KEY_ID}:{PASSWORD}@results/x", "s3://user:p@ssW0rd9x@results/x")


@pytest.mark.slow
@pytest.mark.parametrize("url", CRED_URLS, ids=["slash-in-password", "at-in-password"])
def test_storage_errors_never_print_a_credential(world, url):
    ckpt = str(world.run / "checkpoints" / "last.pt")
    det = world.tmp / "cases" / "det"
    commands = [
        ["status", url],
        ["pull", f"{url}/run1", str(world.tmp / "cases" / "pulled-x"), *world.sets()],
        ["train", *world.sets(f"sink.url={url}")],
        ["stage", *world.sets(f"cache.root={world.tmp / 'cases' / 'staged'}"), "--from", url],
        ["publish", *world.sets(), "--to", url],
        ["doctor", "--for", "train", *world.sets(f"sink.url={url}")],
        [
            "detect",
            ckpt,
            str(world.tmp / "corpus" / "edf" / "dev"),
            "--out",
            str(det),
            *world.sets(f"sink.url={url}"),
        ],
        ["census", url.replace("/x", "/corpus")],
    ]
    for argv in commands:
        res = run_ictal(*argv)
        assert res.returncode in (2, 3), (argv[0], res.returncode, res.stderr[-2000:])
        assert "Traceback" not in res.stderr, res.stderr[-3000:]
        for piece in LEAKED:
            assert piece not in res.stdout + res.stderr, (argv[0], piece, res.stderr[-2000:])
    for path in det.rglob("*") if det.exists() else ():
        if path.is_file():
            assert not any(p.encode() in path.read_bytes() for p in LEAKED), path
    world.intact()


@pytest.mark.slow
def test_a_pulled_run_pushes_only_to_the_sink_given_now(world):
    fs = _s3()
    original = f"{world.sink[5:]}/{world.run.name}"

    def snapshot() -> dict[str, tuple[int, str]]:
        return {p: (i["size"], str(i.get("ETag"))) for p, i in
                fs.find(original, detail=True).items()}  # fmt: skip

    before = snapshot()
    pulled = world.case("continued") / world.run.name
    _ok(run_ictal("pull", f"{world.sink}/{world.run.name}", str(pulled), *world.sets()))
    assert world.sink in (pulled / "config.yaml").read_text()  # frozen, but not a setting now
    ckpt = str(pulled / "checkpoints" / "last.pt")
    res = run_ictal("evaluate", ckpt, "--split", "dev", *world.sets())
    _ok(res)
    assert "pushed to" not in res.stdout
    fs.invalidate_cache()
    assert snapshot() == before, "the evaluation was pushed into the sink the run came from"
    res = run_ictal("evaluate", ckpt, "--split", "dev", "--out", str(pulled.parent / "ev2"),
                    *world.sets("sink.url=s3://results/names/now"))  # fmt: skip
    _ok(res)
    assert fs.exists(f"results/names/now/{world.run.name}/ev2/_PUSHED.json")
    fs.invalidate_cache()
    assert snapshot() == before
    # resume takes the machine's fields from today's config, and the sink only from it
    from ictal.config_file import load_config
    from ictal.runs.directory import RunDir
    from ictal.runs.resume import resume_config

    assert resume_config(load_config(None, []), RunDir(pulled)).sink.url is None
    now = load_config(None, ["sink.url=s3://results/names/now"])
    assert resume_config(now, RunDir(pulled)).sink.url == "s3://results/names/now"
    world.intact()
