"""Split VisDrone-DET frames into train and val by video sequence, and lay the split out as
VisDrone folders of symbolic links (nothing is copied).

VisDrone-DET frames are video frames: ``<sequence>_<frame>_d_<id>`` (e.g.
``0000002_00005_d_0000014``); neighbouring frames of one sequence look alike, so a split by
frame would put near-copies on both sides. The split here is by the first field.
"""
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from .visdrone_files import IMAGE_EXTENSIONS


def sequence_of(stem: str) -> str:
    """The sequence id of a VisDrone-DET frame stem (its first ``_``-separated field)."""
    return stem.split("_", 1)[0]


def find_frames(root: Path) -> Dict[str, Tuple[Path, Path]]:
    """{stem: (image, annotation)} for every ``images/<stem>.<ext>`` under ``root`` (any depth)
    with its ``annotations/<stem>.txt`` beside.

    Raises:
        FileNotFoundError: no frame found, or an image without its annotation file (named).
        ValueError: a stem found twice (both paths named).
    """
    frames: Dict[str, Tuple[Path, Path]] = {}
    for image in sorted(Path(root).rglob("*")):
        if image.parent.name != "images" or image.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        annotation = image.parent.parent / "annotations" / f"{image.stem}.txt"
        if not annotation.is_file():
            raise FileNotFoundError(f"{image}: no annotation file {annotation}")
        if image.stem in frames:
            raise ValueError(f"frame {image.stem} found twice: {frames[image.stem][0]} and {image}")
        frames[image.stem] = (image, annotation)
    if not frames:
        raise FileNotFoundError(f"{root}: no images/<name>.jpg with annotations/<name>.txt found")
    return frames


def split_by_sequence(stems: Sequence[str], val_every: int = 5) -> Tuple[List[str], List[str]]:
    """(train stems, val stems): the sorted sequences at positions ``val_every // 2``,
    ``val_every // 2 + val_every``, ... go to val, all others to train; no sequence is on
    both sides. A fixed rule, independent of any seed or result."""
    sequences = sorted({sequence_of(s) for s in stems})
    if len(sequences) < 2:
        raise ValueError(f"need frames of at least 2 sequences to split by sequence, got {sequences}")
    val_sequences = {q for i, q in enumerate(sequences) if i % val_every == val_every // 2}
    train = sorted(s for s in stems if sequence_of(s) not in val_sequences)
    val = sorted(s for s in stems if sequence_of(s) in val_sequences)
    return train, val


def link_split(frames: Dict[str, Tuple[Path, Path]], stems: Sequence[str], folder: Path) -> None:
    """``folder/{images,annotations}`` holding symbolic links to ``stems``' files; an existing
    folder must already hold exactly these links (it is never changed)."""
    for sub in ("images", "annotations"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    wanted = {}
    for stem in stems:
        image, annotation = frames[stem]
        wanted[folder / "images" / image.name] = image
        wanted[folder / "annotations" / annotation.name] = annotation
    present = {p for sub in ("images", "annotations") for p in (folder / sub).iterdir()}
    stray = sorted(str(p) for p in present - set(wanted))
    if stray:
        raise FileExistsError(f"{folder} holds other files than this split's: {stray[:3]}")
    for link, target in wanted.items():
        if link.is_symlink() and Path(os.readlink(link)) == target.resolve():
            continue
        if link.exists() or link.is_symlink():
            raise FileExistsError(f"{link} exists and is not a link to {target}")
        link.symlink_to(target.resolve())
