"""A small picture of a study for the report editor, rendered from the stored DICOM.

Not a diagnostic viewer: one representative image per series, windowed with
the file's own VOI LUT or window, scaled to fit a screen column. Images the
installed codecs cannot decode are reported as such, never as an error page.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut
from sqlmodel import Session, col, select

from models import Instance, Series

log = logging.getLogger(__name__)
MAX_SIDE = 512


@dataclass(frozen=True)
class SeriesPreview:
    series_number: int | None
    modality: str
    description: str
    data_url: str  # image/jpeg data URL; "" when the pixels could not be decoded


def render_jpeg(path: Path, *, max_side: int = MAX_SIDE) -> bytes:
    """The middle frame of one DICOM file as an 8-bit JPEG; raises on undecodable pixels."""
    dataset = dcmread(path)
    pixels = dataset.pixel_array
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[frames // 2]
    if getattr(dataset, "PhotometricInterpretation", "") in ("RGB", "YBR_FULL", "YBR_FULL_422"):
        picture = Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="RGB")
    else:
        values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset).astype(np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else values * 0.0
        if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
            scaled = 255.0 - scaled
        picture = Image.fromarray(scaled.astype(np.uint8), mode="L")
    picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def study_previews(session: Session, *, study_id: int, data_dir: Path) -> tuple[SeriesPreview, ...]:
    """One picture per series of the study (its middle instance), in series order."""
    previews = []
    for series in session.exec(
        select(Series).where(col(Series.study_id) == study_id).order_by(col(Series.number))
    ).all():
        instances = session.exec(
            select(Instance)
            .where(col(Instance.series_id) == series.id)
            .order_by(col(Instance.number), col(Instance.id))
        ).all()
        data_url = ""
        if instances:
            chosen = instances[len(instances) // 2]
            try:
                jpeg = render_jpeg(data_dir / chosen.path)
                data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
            except Exception as exc:  # codec missing, no pixel data, file moved: say so
                log.info("no preview for %s: %s", chosen.sop_instance_uid, exc)
        previews.append(SeriesPreview(series.number, series.modality, series.description, data_url))
    return tuple(previews)
