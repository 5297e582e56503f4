"""Regroup the flat ImageNet val folder into ``<synset>/`` folders, leaving the originals alone."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

from ._files import list_image_files, require_dir, require_file
from .imagenet import VAL_FOLDER, image_id, read_solution_csv

Method = Literal["symlink", "hardlink", "copy"]
METHODS: tuple[str, ...] = ("symlink", "hardlink", "copy")
#: How many conflicting paths the report lists.
EXAMPLES = 5


def regroup_val(
    root_or_val_dir: str | Path,
    solution_csv: str | Path,
    out_dir: str | Path,
    *,
    method: Method = "symlink",
    dry_run: bool = False,
) -> dict:
    """Build ``out_dir/<synset>/<file>`` for every flat ImageNet val image, without touching
    the originals, so that the val split can be read as class folders.

    Each image's synset is the first token of its ``PredictionString`` in ``solution_csv``
    (``LOC_val_solution.csv``: ``ImageId,PredictionString``). The original files are never
    moved or modified; each is placed in ``out_dir`` as a relative symbolic link
    (``"symlink"``, the default; no extra space), a hard link (``"hardlink"``; same file
    system only) or a copy (``"copy"``). Nothing outside ``out_dir`` is created.

    The call is idempotent: a destination that already exists and is the same file (or, for
    copies, has the same size) is counted as already present and left alone, so a second
    run does nothing and reports ``linked == 0``. A destination that exists but is something
    else is never overwritten; it is counted in ``conflicts``.

    Args:
        root_or_val_dir: the ImageNet root (its ``val/`` folder is used) or the flat val folder.
        solution_csv: path of ``LOC_val_solution.csv``.
        out_dir: where the synset folders go (created if needed), e.g. ``root/val_by_synset``;
            pass it to :class:`~seethrough.data.imagenet.ImageNetDataset` as ``val_dir``.
        method: ``"symlink"``, ``"hardlink"`` or ``"copy"``.
        dry_run: count what would be done, create nothing.

    Returns:
        A report: ``linked`` (files placed, or that would be with ``dry_run``),
        ``already_present``, ``missing_source`` (CSV rows without an image file),
        ``unlisted`` (images without a CSV row, left out), ``conflicts`` and
        ``conflict_examples``, ``synsets``, ``images`` (CSV rows), ``method``, ``dry_run``,
        ``out_dir`` and a one-line ``summary``.

    Raises:
        FileNotFoundError: the val folder or the CSV does not exist.
        ValueError: unknown ``method``, a malformed CSV, or ``out_dir`` equal to the val folder.
        OSError: a link cannot be made (e.g. hard links across file systems).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    source = Path(root_or_val_dir)
    if (source / VAL_FOLDER).is_dir():
        source = source / VAL_FOLDER
    require_dir(source, "Pass the ImageNet root or its flat val/ folder.")
    csv_path = require_file(Path(solution_csv), "LOC_val_solution.csv comes with the ILSVRC CLS-LOC data.")
    out = Path(out_dir)
    if out.resolve() == source.resolve():
        raise ValueError(f"{out}: out_dir must differ from the val folder it regroups")
    solution = read_solution_csv(csv_path)
    files = {image_id(name): source / name for name in list_image_files(source, recursive=False)}
    report: dict[str, Any] = {"linked": 0, "already_present": 0, "missing_source": 0, "conflicts": 0}
    conflicts: list[str] = []
    for name in sorted(solution):
        src = files.get(name)
        if src is None:
            report["missing_source"] += 1
            continue
        dst = out / solution[name][0][0] / src.name
        if os.path.lexists(dst):
            key = "already_present" if _same_file(src, dst, method) else "conflicts"
            report[key] += 1
            if key == "conflicts" and len(conflicts) < EXAMPLES:
                conflicts.append(str(dst))
            continue
        if not dry_run:
            _place(src, dst, method)
        report["linked"] += 1
    report.update(
        unlisted=len(set(files) - set(solution)),
        conflict_examples=conflicts,
        synsets=len({synsets[0] for synsets, _ in solution.values()}),
        images=len(solution),
        method=method,
        dry_run=dry_run,
        out_dir=str(out),
    )
    report["summary"] = _summary(report)
    return report


def _same_file(src: Path, dst: Path, method: str) -> bool:
    try:
        if os.path.samefile(src, dst):
            return True
        return method == "copy" and not dst.is_symlink() and dst.stat().st_size == src.stat().st_size
    except OSError:  # a broken link
        return False


def _place(src: Path, dst: Path, method: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if method == "symlink":
        dst.symlink_to(os.path.relpath(src.resolve(), dst.parent.resolve()))
    elif method == "hardlink":
        try:
            os.link(src, dst)
        except OSError as err:
            raise OSError(
                f"cannot hard-link {src} to {dst} ({err}); hard links need both on one file "
                "system: use method='symlink' or 'copy'"
            ) from err
    else:
        shutil.copy2(src, dst)


def _summary(report: dict) -> str:
    verb = "would place" if report["dry_run"] else "placed"
    if report["linked"] == 0 and not report["dry_run"]:
        head = f"nothing to do: {report['already_present']} images already in {report['out_dir']}"
    else:
        head = (f"{verb} {report['linked']} images ({report['method']}) into {report['synsets']} "
                f"synset folders of {report['out_dir']}; {report['already_present']} already present")
    return (f"{head}; {report['missing_source']} listed but missing, {report['unlisted']} unlisted, "
            f"{report['conflicts']} conflicts")
