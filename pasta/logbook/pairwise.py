"""Pairwise preference data (Pick-a-Pic style) into its own table, to pre-train the utility on large
non-sequential data as in the PASTA paper: columns found by name, image bytes saved by content hash, batches
committed one by one so that an interrupted import resumes by running it again."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pasta.logbook.rows import _text, _vector_bytes

if TYPE_CHECKING:
    from pasta.logbook.store import LogStore


def import_pairwise_parquet(
    store: LogStore,
    path: str | Path,
    mapping: Mapping[str, str] | None = None,
    *,
    source: str | None = None,
    image_dir: str | Path | None = None,
    batch_size: int = 4096,
) -> int:
    """Import Pick-a-Pic-style pairwise preferences from a Parquet file, in batches (bounded memory).

    Columns are found by name: prompt (prompt | caption | text), image_a (image_a | image_0 | image_0_path |
    image_0_uid | image_0_url | jpg_0), image_b likewise, label (label, read as P(A preferred); or label_0, with
    label_1 normalising it: label_0 / (label_0 + label_1)), optional user_id, embedding_a | embedding_0 and
    embedding_b | embedding_1 (lists of floats). `mapping` names other columns, e.g. {"prompt": "title"}.
    Columns holding image bytes (e.g. jpg_0) need `image_dir`: the images are saved there under their hash.
    Rows without a label are skipped; each batch commits on its own and re-importing skips rows already present
    (keyed by source, prompt, images and user), so an interrupted import is resumed by running it again.
    Returns the number of new rows.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path} as Parquet: {e}") from e
    columns = _pairwise_columns(parquet.schema_arrow, dict(mapping or {}), image_dir is not None, path)
    source = _text(source, "source") if source is not None else path.stem
    image_dir = Path(image_dir) if image_dir is not None else None
    if image_dir is not None:
        image_dir.mkdir(parents=True, exist_ok=True)
    inserted, offset = 0, 0
    for batch in parquet.iter_batches(batch_size=batch_size, columns=sorted(set(columns.values()))):
        rows = []
        for i, record in enumerate(batch.to_pylist(), offset):
            values = {key: record[column] for key, column in columns.items()}
            row = _pairwise_row(values, columns, image_dir, f"{path}, row {i}")
            if row is not None:
                rows.append((*row, source))
        offset += batch.num_rows
        with store._write() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO pairwise (user_id, prompt, image_a, image_b, embedding_a, "
                "embedding_b, label, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            inserted += conn.total_changes - before
    return inserted


_PAIRWISE_NAMES = {
    "prompt": ("prompt", "caption", "text"),
    "image_a": ("image_a", "image_0", "image_0_path", "image_0_uid", "image_0_url", "jpg_0"),
    "image_b": ("image_b", "image_1", "image_1_path", "image_1_uid", "image_1_url", "jpg_1"),
    "label": ("label", "label_0"),
    "label_b": ("label_1",),
    "user_id": ("user_id", "user"),
    "embedding_a": ("embedding_a", "embedding_0"),
    "embedding_b": ("embedding_b", "embedding_1"),
}
_PAIRWISE_REQUIRED = ("prompt", "image_a", "image_b", "label")


def _holds_image_bytes(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or (pa.types.is_struct(arrow_type) and arrow_type.get_field_index("bytes") >= 0)
    )


def _pairwise_columns(schema: Any, mapping: dict[str, str], save_images: bool, path: Path) -> dict[str, str]:
    """Our field -> the file's column, from `mapping` then by name; a clear error naming what is missing."""
    unknown = set(mapping) - set(_PAIRWISE_NAMES)
    if unknown:
        raise ValueError(f"mapping has unknown field(s) {', '.join(sorted(unknown))}: use {', '.join(_PAIRWISE_NAMES)}")
    names = set(schema.names)
    absent = {field: column for field, column in mapping.items() if column not in names}
    if absent:
        raise ValueError(
            f"{path} has no column(s) {', '.join(sorted(absent.values()))} named in mapping; its "
            f"columns are: {', '.join(schema.names)}"
        )
    columns = dict(mapping)
    for field, candidates in _PAIRWISE_NAMES.items():
        present = [c for c in candidates if c in names]
        if field in columns or not present:
            continue
        if field in ("image_a", "image_b"):  # bytes when they can be saved, else paths, URLs or ids
            present.sort(key=lambda c: _holds_image_bytes(schema.field(c).type) != save_images)
        columns[field] = present[0]
    if "label_b" in columns and "label_b" not in mapping and columns["label"] != "label_0":
        del columns["label_b"]  # label_1 only normalises label_0
    missing = [f for f in _PAIRWISE_REQUIRED if f not in columns]
    if missing:
        looked = "; ".join(f"{f}: {' | '.join(_PAIRWISE_NAMES[f])}" for f in missing)
        raise ValueError(
            f"{path} lacks the column(s) for {', '.join(missing)} (looked for {looked}); its columns "
            f"are: {', '.join(schema.names)}. Name them with mapping={{field: column}}"
        )
    for field in ("image_a", "image_b"):
        if _holds_image_bytes(schema.field(columns[field]).type) and not save_images:
            raise ValueError(
                f"{path}: column {columns[field]} ({field}) holds image bytes: pass image_dir to save "
                "them as files, or map image_a/image_b to columns of paths, URLs or ids"
            )
    return columns


def _pairwise_row(values: dict, columns: dict, image_dir: Path | None, where: str) -> tuple | None:
    """(user_id, prompt, image_a, image_b, embedding_a, embedding_b, label), or None for an unlabelled row."""
    label = values["label"]
    if "label_b" in columns and label is not None and values["label_b"] is not None:
        total = float(label) + float(values["label_b"])
        label = float(label) / total if total > 0 else None
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return None
    label = float(label)
    if not 0.0 <= label <= 1.0:
        raise ValueError(f"{where}: label {label} is outside 0..1 (1 = A preferred, 0 = B, 0.5 = tie)")
    prompt = values["prompt"]
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"{where}: the prompt ({columns['prompt']}) is empty")
    images = []
    for field in ("image_a", "image_b"):
        image = values[field]
        if isinstance(image, dict):  # a Hugging Face Image struct {bytes, path}
            image = image.get("bytes") or image.get("path")
        if isinstance(image, bytes) and image_dir is not None:
            image = str(_save_image(image, image_dir))
        if image is None or image == "":
            raise ValueError(f"{where}: {field} ({columns[field]}) is empty")
        images.append(str(image))
    user = values.get("user_id")
    embeddings = [_vector_bytes(values.get(k), f"{where}: {k}") for k in ("embedding_a", "embedding_b")]
    return (None if user is None else str(user), prompt, *images, *embeddings, label)


def _save_image(data: bytes, folder: Path) -> Path:
    """Content-addressed, so an image shared by many pairs is stored once."""
    suffix = (
        ".png"
        if data.startswith(b"\x89PNG")
        else ".jpg"
        if data.startswith(b"\xff\xd8")
        else (".webp" if data[8:12] == b"WEBP" else ".img")
    )
    path = (folder / (hashlib.sha256(data).hexdigest()[:32] + suffix)).absolute()
    if not path.exists():
        tmp = path.with_name(path.name + f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path
