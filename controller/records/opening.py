"""Open sealed records (signature, content hash, decryption, parse and check) on every core.

Why worker processes and not threads: cryptography's bindings hold the GIL through an ECDSA
verify and an X25519 exchange (two threads verifying run at 1.03x one; cryptography 50), and
parsing and checking a record is Python. In one process a batch is opened on one core however
many threads it is given. None of this work needs the database, so it runs in spawned processes;
the batch's transaction, and every decision a stored row depends on, stays with ingest.

One function, ``open_sealed``, runs inline (no pool, a small batch, a broken pool) and in a
worker, so the two paths cannot disagree. Workers are stateless: a worker that dies (kill -9,
the OOM killer) breaks the pool; the batch in hand is then opened inline and a new pool is
started for the next one. Each worker watches its parent and exits within a second of it dying,
so a controller killed -9 leaves no process behind.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date
from typing import NamedTuple

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from muster.crypto import DevicePublicKey, UploadPrivateKey, open_record, verify_record
from muster.errors import SealError, SignatureError
from muster.idnumbers import preload as preload_id_regions
from muster.records import RecordError, parse_record
from muster.v1 import data_pb2

__all__ = [
    "Job",
    "Opened",
    "Parsed",
    "PendingOpen",
    "RecordOpener",
    "default_workers",
    "open_sealed",
]

log = structlog.get_logger(__name__)

# Fewer records than this per worker cost more in hand-over (pickling both ways) than they save.
MIN_SHARE = 8


class Parsed(NamedTuple):
    """What ingest needs of a record that parsed and passed every record rule."""

    record_id: str
    township_code: str
    category: str
    schema_version: str  # "category/form_version", as the payload says
    id_number: str
    attachments: tuple[tuple[str, int, str], ...]  # (name, size, sha256) for each one named
    payload_json: str  # serialised once, here, as it is stored


class Opened(NamedTuple):
    """A record after opening.

    ``digest`` None: the signature does not verify (nothing else was tried). ``opened`` False:
    not decrypted, because it does not open or because the caller knew it stored (answered from
    the digest alone). Then either ``parsed`` or ``refusal`` (the record rule it broke) for a
    collection form, or ``plaintext`` for another kind, handed to that kind's own handler.
    ``error``: an unexpected failure, as traceback text, which the record is answered
    ``internal`` for.
    """

    digest: str | None
    opened: bool = False
    parsed: Parsed | None = None
    refusal: tuple[str, str] | None = None
    plaintext: bytes | None = None
    error: str | None = None


class Job(NamedTuple):
    position: int
    sealed: data_pb2.SealedRecord
    key: DevicePublicKey
    key_der: bytes  # the same key as it travels to a worker
    stored: bool  # already stored at the centre: verify and hash only
    form: bool  # a collection form (parse and check it) rather than another kind


def open_sealed(
    items: Sequence[tuple[data_pb2.SealedRecord, DevicePublicKey, bool, bool]],
    upload_keys: Mapping[int, UploadPrivateKey],
    today: date,
) -> list[Opened]:
    """Verify, hash, decrypt and (for a form) parse and check each (sealed record, device key,
    stored, form) as of ``today``; one ``Opened`` per item, in order.

    Phase by phase over the whole list (every signature, then every decryption, then every
    parse) rather than record by record: interleaved, OpenSSL's tables and the interpreter's
    code keep evicting each other from the CPU caches, and the same records take 25-35 % longer
    (measured: 430 us a record phased, 530-690 us interleaved).
    """
    done: list[Opened | None] = [None] * len(items)
    digests: dict[int, str] = {}
    for i, (sealed, key, stored, _) in enumerate(items):
        try:
            digests[i] = verify_record(sealed, key)
        except SignatureError:
            done[i] = Opened(None)
        except Exception:  # kept with its record, answered where that record is answered
            done[i] = Opened(None, error=traceback.format_exc())
        else:
            if stored:
                done[i] = Opened(digests[i])
    plaintexts: dict[int, bytes] = {}
    for i, (sealed, _, _, form) in enumerate(items):
        if done[i] is not None:
            continue
        try:
            plaintext = open_record(sealed, upload_keys)
        except SealError:
            done[i] = Opened(digests[i])
        except Exception:
            done[i] = Opened(None, error=traceback.format_exc())
        else:
            if form:
                plaintexts[i] = plaintext
            else:
                done[i] = Opened(digests[i], opened=True, plaintext=plaintext)
    for i, plaintext in plaintexts.items():
        done[i] = _parsed(digests[i], plaintext, today)
    return [o if o is not None else Opened(None, error="not opened") for o in done]


def _parsed(digest: str, plaintext: bytes, today: date) -> Opened:
    try:
        payload = parse_record(plaintext, today=today)
    except RecordError as exc:
        return Opened(digest, opened=True, refusal=(exc.code, str(exc)))
    except Exception:
        return Opened(None, error=traceback.format_exc())
    try:
        parsed = Parsed(
            record_id=payload.record_id,
            township_code=payload.township_code,
            category=payload.category.value,
            schema_version=f"{payload.category.value}/{payload.form_version}",
            id_number=payload.person.id_number,
            attachments=tuple(
                (name, ref.size, ref.sha256) for name, ref in payload.attachments.items()
            ),
            payload_json=payload.model_dump_json(),
        )
    except Exception:
        return Opened(None, error=traceback.format_exc())
    return Opened(digest, opened=True, parsed=parsed)


def default_workers() -> int:
    """One worker per core; none on a single core, where a worker only adds hand-over."""
    cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


class RecordOpener:
    """Opens a batch's records: inline, or split over a pool of worker processes.

    The pool starts on the first batch large enough to share (so a process that only ever sees
    a few records never starts one) and is shared by every thread that calls ``open``.
    """

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError(f"workers must be 0 (inline) or more, not {workers}")
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer: weakref.finalize[[ProcessPoolExecutor], RecordOpener] | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def open(
        self, jobs: Sequence[Job], upload_keys: Mapping[int, UploadPrivateKey], today: date
    ) -> dict[int, Opened]:
        """Every job opened, by the workers when the batch is large enough to share."""
        pending = self.submit(jobs, upload_keys, today, start=True)
        opened = pending.result() if pending is not None else None
        return opened if opened is not None else _inline(jobs, upload_keys, today)

    def submit(
        self,
        jobs: Sequence[Job],
        upload_keys: Mapping[int, UploadPrivateKey],
        today: date,
        *,
        start: bool,
    ) -> PendingOpen | None:
        """Hand ``jobs`` to the workers and return at once; None when they are not for the
        workers (too few, no workers, or none running and ``start`` is false)."""
        if self._workers == 0 or len(jobs) < 2 * MIN_SHARE:
            return None
        pool = self._current_pool(start=start)
        if pool is None:
            return None
        share = max(MIN_SHARE, -(-len(jobs) // self._workers))
        keys = {version: _raw_private(key) for version, key in upload_keys.items()}
        try:
            futures = [
                pool.submit(
                    _open_part,
                    keys,
                    today,
                    [
                        (j.position, j.sealed.SerializeToString(), j.key_der, j.stored, j.form)
                        for j in jobs[i : i + share]
                    ],
                )
                for i in range(0, len(jobs), share)
            ]
        except RuntimeError as exc:  # shut down or broken under us
            self._lost(pool, exc)
            return None
        return PendingOpen(self, pool, futures)

    def start(self) -> None:
        """Start every worker now and wait until each has loaded what it needs (a few seconds
        on a busy machine), so the first upload does not wait for them."""
        pool = self._current_pool() if self._workers else None
        if pool is None:
            return
        try:
            for ready in [pool.submit(_ready) for _ in range(self._workers)]:
                ready.result()
        except RuntimeError as exc:
            self._lost(pool, exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _current_pool(self, *, start: bool = True) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._closed:
                return None
            if self._pool is None and start:
                self._pool = ProcessPoolExecutor(
                    self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_start,
                    initargs=(os.getpid(),),
                )
                # An ingestor dropped without close() (a test, a failed start) takes its
                # workers with it.
                self._finalizer = weakref.finalize(self, _shutdown, self._pool)
            return self._pool

    def _lost(self, pool: ProcessPoolExecutor, exc: BaseException) -> None:
        # A worker died (or the pool was shut down under us): the batch in hand is opened by
        # its caller, the next one gets a new pool.
        log.warning("record opening workers lost; opening this batch inline", error=str(exc))
        self._discard(pool)

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)


class PendingOpen:
    """Records in the workers' hands: ``result`` waits for them, or is None when the workers
    were lost on the way (the caller then opens the records itself)."""

    def __init__(
        self,
        opener: RecordOpener,
        pool: ProcessPoolExecutor,
        futures: list[Future[list[tuple[int, Opened]]]],
    ) -> None:
        self._opener, self._pool, self._futures = opener, pool, futures

    def result(self) -> dict[int, Opened] | None:
        try:
            return {position: o for f in self._futures for position, o in f.result()}
        except RuntimeError as exc:  # BrokenProcessPool is one
            self._opener._lost(self._pool, exc)
            return None


def _shutdown(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)


def _inline(
    jobs: Sequence[Job], upload_keys: Mapping[int, UploadPrivateKey], today: date
) -> dict[int, Opened]:
    opened = open_sealed([(j.sealed, j.key, j.stored, j.form) for j in jobs], upload_keys, today)
    return {j.position: o for j, o in zip(jobs, opened, strict=True)}


def _raw_private(key: UploadPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


# In a worker: keys as loaded from the bytes they came as, for the life of the process.
_DEVICE_KEYS: dict[bytes, DevicePublicKey] = {}
_UPLOAD_KEYS: dict[bytes, UploadPrivateKey] = {}
_CACHED_KEYS = 4096


def _worker_start(parent: int) -> None:
    # Ctrl-C reaches the whole process group; the controller shuts its workers down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    preload_id_regions()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _ready() -> int:
    # Holds its worker for a moment so that each of ``start``'s calls lands on another one.
    time.sleep(0.05)
    return os.getpid()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)  # the controller is gone: nobody will read what this worker would answer


def _open_part(
    raw_keys: dict[int, bytes], today: date, part: list[tuple[int, bytes, bytes, bool, bool]]
) -> list[tuple[int, Opened]]:
    upload_keys = {version: _upload_key(raw) for version, raw in raw_keys.items()}
    answered: list[tuple[int, Opened]] = []
    positions: list[int] = []
    items: list[tuple[data_pb2.SealedRecord, DevicePublicKey, bool, bool]] = []
    for position, serialised, key_der, stored, form in part:
        try:
            item = (
                data_pb2.SealedRecord.FromString(serialised),
                _device_key(key_der),
                stored,
                form,
            )
        except Exception:
            answered.append((position, Opened(None, error=traceback.format_exc())))
            continue
        positions.append(position)
        items.append(item)
    return answered + list(zip(positions, open_sealed(items, upload_keys, today), strict=True))


def _device_key(der: bytes) -> DevicePublicKey:
    key = _DEVICE_KEYS.get(der)
    if key is None:
        loaded = serialization.load_der_public_key(der)
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            raise TypeError("a device key must be an EC public key")
        if len(_DEVICE_KEYS) >= _CACHED_KEYS:
            _DEVICE_KEYS.clear()
        key = _DEVICE_KEYS[der] = loaded
    return key


def _upload_key(raw: bytes) -> UploadPrivateKey:
    key = _UPLOAD_KEYS.get(raw)
    if key is None:
        if len(_UPLOAD_KEYS) >= 64:
            _UPLOAD_KEYS.clear()
        key = _UPLOAD_KEYS[raw] = x25519.X25519PrivateKey.from_private_bytes(raw)
    return key
