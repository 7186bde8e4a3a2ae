"""Credentials never leave the process: they are masked in every message printed or logged
(third-party exception text included) and in every file Ictal stores (config.yaml, run.json,
heartbeats, census JSON). Credentials belong in the environment, never in a URL.

What is masked, wherever it appears in a text:

- the userinfo of a URL (``s3://user:pass@bucket``), passwords holding ``@``, ``:`` or ``/``
  included, and of a URL written URL-encoded (``s3%3A%2F%2Fuser%3Apass%40bucket``);
- ``user:secret@host`` without a scheme in front (botocore quotes a bucket name that way);
- values of credential-like query parameters (``?token=``, ``X-Amz-Signature=``,
  ``X-Amz-Credential=``, ``sig=``...) and of labelled secrets (``password=``,
  ``aws_secret_access_key: ...``, ``Authorization: ...`` headers);
- AWS access key ids (``AKIA...``) and strings shaped like AWS secret keys (40 characters of
  mixed-case letters and digits);
- the value of any credential-named environment variable of this process (at least 12
  characters long), and the credentials of any URL this process opened (``note_url``),
  whole or in the pieces a library may quote (a bucket name cut at a '/' of the password),
  wherever they show.

Ordinary text stays as it is: ``ictal``, ``key16``, ``a=b``, ``host:pid``, an e-mail address,
a sha1 or sha256 digest, a run id.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

MASK = "***"

# scheme:// and what follows it up to a space or a quote (bounded: never quadratic).
_SCHEMED = re.compile(
    r"\b(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,30}://)" r"(?P<rest>[^\s'\"<>`]{1,4096})"
)
# user:secret@host without a scheme (a ':' followed by '//' belongs to a scheme).
_BARE_USERINFO = re.compile(
    r"(?<![\w.%+~/:@-])[\w.%+~-]{1,256}:(?!//)" r"[^\s'\"<>`]{0,512}@(?=[\w-])"
)
# A URL-encoded URL with userinfo: %3A%2F%2F<userinfo>%40 (the authority ends at %2F).
_ENCODED_USERINFO = re.compile(
    r"(?i)(?P<scheme>%3A%2F%2F)(?P<userinfo>(?:(?!%2F|%3F|%23)[^\s'\"<>&]){1,1024})%40"
)
# ?token=...&X-Amz-Signature=...: values of parameters whose name says they are secret.
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*(?:token|secret|password|passwd|pwd|signature|sig|credential"
    r"|key|auth|session)[\w.-]*))=(?P<value>[^&#\s'\"]*)",
    re.IGNORECASE,
)
# Signed-query parameters quoted without their '?' or '&' (an error that names one).
_SIGNED_PARAM = re.compile(
    r"(?i)(?<![\w-])(?P<name>x-amz-(?:credential|signature|security-token)"
    r"|x-goog-(?:credential|signature)|awsaccesskeyid|signature|sig)=(?P<value>[^&\s'\",]+)"
)
# Labelled secrets: password=..., aws_secret_access_key: ..., "api_key": "...".
_LABELLED = re.compile(
    r"(?i)(?<![\w-])(?P<name>[\w-]*(?:password|passwd|secret[_-]?access[_-]?key|secret[_-]?key"
    r"|client[_-]?secret|session[_-]?token|security[_-]?token|access[_-]?token|auth[_-]?token"
    r"|api[_-]?key)|secret|pwd)(?P<sep>['\"]?\s{0,3}[:=]\s{0,3}['\"]?)(?P<value>[^\s'\",;&}]+)"
)
# Authorization: Bearer ... / AWS4-HMAC-SHA256 Credential=..., Signature=... (to the quote or
# the end of the line).
_AUTHORIZATION = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization)(?P<sep>['\"]?\s{0,3}[:=]\s{0,3}['\"]?)"
    r"(?P<value>[^'\"\r\n]+)"
)
_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])")
_AWS_SECRET_SHAPE = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")
_SECRET_ENV_NAME = re.compile(
    r"(?i)(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|API_KEY|PRIVATE_KEY|SAS)"
)
MIN_ENV_SECRET = 12  # shorter values ("testing", "1") would mask ordinary words


def _authority_userinfo(rest: str) -> int:
    """Length of the userinfo at the start of ``rest`` (what follows ``scheme://``), 0 when
    there is none. A ``user:password`` form runs to the last '@' of the whole URL (its
    password may hold '@', ':' and '/'; masking a path's '@' too is the safe mistake);
    a token without ':' runs to the last '@' of the authority; ``host:port`` with no '@'
    after it has none."""
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    authority = rest[:end]
    first = authority.split("@", 1)[0]
    user, colon, after = first.partition(":")
    port_only = after.isdigit() and "@" not in rest
    if colon and user and not port_only and "@" in rest:
        return rest.rindex("@")
    return authority.rindex("@") if "@" in authority else 0


def _mask_schemed(match: re.Match[str]) -> str:
    rest = match["rest"]
    cut = _authority_userinfo(rest)
    if cut == 0:
        return match[0]
    return f"{match['scheme']}{MASK}{rest[cut:]}"


def _looks_like_aws_secret(match: re.Match[str]) -> str:
    """A 40-character run masked when it mixes upper and lower case letters and digits and
    is not a path (digests are one case; paths have many '/')."""
    s = match[0]
    shaped = (
        any(c.isupper() for c in s)
        and any(c.islower() for c in s)
        and any(c.isdigit() for c in s)
        and s.count("/") <= 3
        and not s.startswith("/")
        and not s.endswith("/")
        and "//" not in s
    )
    return MASK if shaped else s


def _env_secrets() -> list[str]:
    """Values of this process's credential-named environment variables, longest first."""
    values = {
        v
        for k, v in os.environ.items()
        if len(v) >= MIN_ENV_SECRET
        and _SECRET_ENV_NAME.search(k)
        and not v.startswith(("/", "~", "."))  # a path to a key file is not the key
        and not v.isspace()
    }
    return sorted(values, key=len, reverse=True)


# Credentials this process was handed inside URLs (``note_url``), and the pieces a backend
# may quote on their own: botocore names the bucket of ``s3://KEY:SE/CRET@b`` "KEY:SE".
_HANDED: set[str] = set()
MIN_PIECE = 6  # a shorter piece of a password is not masked on its own (it could be a word)
MIN_USER = 12


def note_url(url: str) -> None:
    """Remember the credentials in ``url`` (its userinfo, user, password, the part before
    its first '/', each piece of the password between '/', ':' and '@', and the values of
    its secret query parameters) so that every later message masks them wherever a library
    quotes them, whole or cut."""
    _, sep, rest = url.partition("://")
    query = rest.partition("?")[2].partition("#")[0]
    for part in query.split("&"):
        if _SECRET_PARAM.fullmatch("?" + part) or _SIGNED_PARAM.fullmatch(part):
            value = part.partition("=")[2]
            if len(value) >= MIN_PIECE:
                _HANDED.add(value)
    cut = _authority_userinfo(rest) if sep else 0
    if not cut:
        return
    userinfo = rest[:cut]
    user, _, password = userinfo.partition(":")
    pieces = {userinfo, password, rest.split("/", 1)[0], *re.split(r"[/:@]", password)}
    if len(user) >= MIN_USER:  # an access key id, not a word such as "admin"
        pieces.add(user)
    _HANDED.update(p for p in pieces if len(p) >= MIN_PIECE and p != MASK)


def _secrets() -> tuple[str, ...]:
    """Every exact value to mask: the environment's credentials, then those handed in URLs."""
    return (*_env_secrets(), *sorted(_HANDED, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...] | None = None) -> str:
    """``text`` with every credential it holds replaced by ``***`` (see the module doc);
    ``secrets`` is ``_secrets()`` taken once by a caller that redacts many strings."""
    for secret in _secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _SCHEMED.sub(_mask_schemed, text)
    if "@" in text:
        text = _BARE_USERINFO.sub(f"{MASK}@", text)
    if "%" in text:
        text = _ENCODED_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}%40", text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda m: f"{m['name']}={MASK}", text)
        text = _SIGNED_PARAM.sub(lambda m: f"{m['name']}={MASK}", text)
    if "=" in text or ":" in text:
        text = _AUTHORIZATION.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
        text = _LABELLED.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    text = _AWS_KEY_ID.sub(MASK, text)
    return _AWS_SECRET_SHAPE.sub(_looks_like_aws_secret, text)


def redact_tree(obj: Any, secrets: tuple[str, ...] | None = None) -> Any:
    """Every string inside nested dicts, lists and tuples redacted (for stored JSON/YAML);
    the secrets to mask are looked up once for the whole tree."""
    if secrets is None:
        secrets = _secrets()
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, dict):
        return {k: redact_tree(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact_tree(v, secrets) for v in obj)
    return obj


# Characters a terminal acts on rather than shows: C0/C1 controls but line feed and tab (ESC
# starts sequences that move the cursor, rewrite the title or clear the screen; CR overwrites
# a line) and the bidirectional overrides that reorder what is shown.
_ACTIVE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on written as its escape
    (``\\x1b``): a file name or label can never rewrite what the user sees."""
    return _ACTIVE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) carry no credentials and nothing a
    terminal would act on."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact(super().format(record)))
