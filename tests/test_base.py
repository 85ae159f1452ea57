"""Base models with no hub: a base split over several packages' zip parts is joined, checked by
hash and unpacked once."""
import hashlib
import zipfile

import pytest

from diplotag.model.base import assemble_zip_parts


def test_a_split_zip_is_joined_checked_and_unpacked_once(tmp_path, tiny_base):
    from transformers import AutoConfig

    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in tiny_base.iterdir():
            z.write(f, f"tiny-model/{f.name}")
        z.writestr("tiny-model/desktop.ini", "[.ShellClassInfo]")
    data = archive.read_bytes()
    parts = [tmp_path / "model.zip.001", tmp_path / "model.zip.002"]
    parts[0].write_bytes(data[: len(data) // 2])
    parts[1].write_bytes(data[len(data) // 2:])
    sha = hashlib.sha256(data).hexdigest()

    with pytest.raises(ValueError, match="sha256"):
        assemble_zip_parts(parts[::-1], sha, tmp_path / "wrong-order")
    dest = assemble_zip_parts(parts, sha, tmp_path / "cache" / "tiny")
    assert AutoConfig.from_pretrained(dest).num_hidden_layers == 2 and not (dest / "desktop.ini").exists()
    parts[0].unlink()  # unpacked once: the parts are not read again
    assert assemble_zip_parts(parts, sha, tmp_path / "cache" / "tiny") == dest
