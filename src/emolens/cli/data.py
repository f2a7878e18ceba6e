"""`emolens data ...`: look at a dataset before training on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emolens.cli.app import data_app
from emolens.errors import ConfigError


def _parse_label_map(items: list[str] | None) -> dict[str, str | None] | None:
    if not items:
        return None
    mapping: dict[str, str | None] = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--label-map {item!r}: expected FOLDER=EMOTION (e.g. happiness=happy), or FOLDER= to drop a class")
        mapping[name.strip()] = target.strip() or None
    return mapping


@data_app.command("stats")
def stats(
    path: Annotated[Path, typer.Argument(help="Kaggle FER-2013 zip, its extracted folder, fer2013.csv, or any folder of class folders.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for stats.md/.json/.png; existing files are never overwritten.")] = Path("emolens-stats"),
    label_map: Annotated[list[str] | None, typer.Option("--label-map", help="Rename a class folder: FOLDER=EMOTION; FOLDER= drops it. Repeatable.")] = None,
    ferplus: Annotated[Path | None, typer.Option("--ferplus", help="fer2013new.csv: relabel fer2013.csv by FER+ majority vote.")] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse (and write) the decoded-dataset cache.")] = True,
) -> None:
    """Images per class and split, and exact-duplicate faces within and across splits."""
    import warnings

    from emolens.data import load_dataset
    from emolens.data.stats import dataset_stats

    with warnings.catch_warnings():
        # The CLI reports the skipped count itself, one line instead of the warning's sample.
        warnings.simplefilter("ignore")
        dataset = load_dataset(path, label_map=_parse_label_map(label_map), ferplus=ferplus, cache=cache)
    st = dataset_stats(dataset)
    typer.echo(f"{dataset.source}  (sha256 {dataset.source_sha256[:16]}…, {len(dataset)} images, {dataset.image_size}x{dataset.image_size})")
    if dataset.skipped:
        # Every one: a user fixing a dataset needs the whole list, not a sample (also in stats.md/.json).
        typer.echo(st.skipped_text())
    typer.echo("")
    typer.echo(st.table().to_string())
    typer.echo("")
    typer.echo(st.duplicates_text())
    paths = st.save(out)
    typer.echo("")
    for kind, p in paths.items():
        typer.echo(f"{kind:>8}: {p}")


@data_app.command("ferplus-map")
def ferplus_map(
    kaggle: Annotated[Path, typer.Argument(help="The Kaggle FER-2013 download (archive.zip) or its extracted folder.")],
    ferplus_images: Annotated[Path, typer.Argument(help="FER+ images zip (FER2013Train/ FER2013Valid/ FER2013Test/).")],
    out: Annotated[Path, typer.Option("--out", help="Map file to write (gzip CSV: Kaggle name, FER+ image name).")] = Path("ferplus_kaggle.csv.gz"),
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite --out if it exists (e.g. the map shipped in src/emolens/data/).")] = False,
) -> None:
    """Match each Kaggle FER-2013 JPEG to its FER+ image by nearest pixels: the map that lets
    --ferplus fer2013new.csv label the Kaggle download (emolens ships one; this rebuilds it)."""
    import warnings

    import numpy as np

    from emolens.data import load_dataset
    from emolens.data.ferplus_map import MAX_MATCH_RMSE, build_kaggle_map, write_map

    if out.exists() and not replace:
        raise ConfigError(f"{out} exists; pass --replace to overwrite it, or choose another --out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset(kaggle)
    result = build_kaggle_map(dataset, ferplus_images)
    write_map(result.names, out)
    typer.echo(
        f"matched {len(result.names)} of {len(dataset)} Kaggle images (RMSE median {np.median(result.rmse):.2f}, max {result.rmse.max():.2f} "
        f"grey levels; next-nearest other face median {np.median(result.second_rmse):.1f}); "
        f"{len(result.unmatched)} have no FER+ image within {MAX_MATCH_RMSE} (FER+ judged them not a face)"
    )
    typer.echo(f"wrote {out}")
