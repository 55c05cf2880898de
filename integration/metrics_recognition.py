"""Mutual recognition: prompts, decisions, the recognition rate and what it saved.

* A *prompt* is a recognisable prior shown to a clinician: every decision
  decided in the window (its card, if any, was the prompt), plus every
  recognisable CDS card issued in the window that no decision answered
  ("unanswered"). Decisions made in the portal have no card row.
* Recognition rate: accepted ÷ decisions (unanswered prompts left out).
* Saved: one exam per accepted decision, and its ``avoided_fee_fen``.
* The clinician is ``app_user/<id>`` when the hub knows the user, else the
  CDS Hooks ``clinician_ref`` (e.g. ``Practitioner/123``), else null.
* Scope: the clinic is where the clinician orders, the reading centre the one
  that facility uploads to (itself for a hospital), the exam type the one
  requested; keys by the local time of the decision (or of the card).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from integration.metrics_common import (
    Dimension,
    aggregate,
    count,
    group_columns,
    ratio,
    rows,
    scoped,
)
from integration.metrics_frames import Frames
from models.enums import RecognitionOutcome

UNANSWERED = "unanswered"
_PROMPT_COLUMNS = (
    "reading_centre_id",
    "clinic_id",
    "modality",
    "exam_type_id",
    "clinician",
    "outcome",
    "refusal_reason",
    "avoided_fee_fen",
    "hour",
    "day",
    "month",
    "half_year",
)


def _clinician() -> pl.Expr:
    reference = pl.col("clinician_ref").fill_null("")
    return (
        pl.when(pl.col("clinician_id").is_not_null())
        .then(pl.format("app_user/{}", pl.col("clinician_id")))
        .when(reference != "")
        .then(reference)
        .otherwise(None)
        .alias("clinician")
    )


def recognition_prompts(frames: Frames) -> pl.DataFrame:
    """One row per prompt in the window: decided (accepted/refused) or unanswered."""
    return frames.derived("recognition_prompts", lambda: _recognition_prompts(frames))


def _recognition_prompts(frames: Frames) -> pl.DataFrame:
    decisions = scoped(frames, frames.decisions, "decided_at").with_columns(_clinician())
    answered = frames.decisions["card_id"].drop_nulls().unique().to_list()
    reference = pl.col("clinician_ref").fill_null("")
    cards = (
        scoped(frames, frames.cards, "issued_at")
        .filter(~pl.col("card_uuid").is_in(answered))
        .with_columns(
            pl.when(reference != "").then(reference).otherwise(None).alias("clinician"),
            pl.lit(UNANSWERED).alias("outcome"),
            pl.lit(None, dtype=pl.String).alias("refusal_reason"),
            pl.lit(0, dtype=pl.Int64).alias("avoided_fee_fen"),
        )
    )
    return pl.concat(
        [decisions.select(_PROMPT_COLUMNS), cards.select(_PROMPT_COLUMNS)], how="vertical"
    )


def recognition(frames: Frames, *, by: Sequence[Dimension] = ()) -> pl.DataFrame:
    """prompts, decisions, accepted, refused, unanswered, recognition_rate, exams_saved and
    avoided_fee_fen (integer fen) per group; ``by=("month",)`` is the trend."""
    prompts = recognition_prompts(frames)
    accepted = pl.col("outcome") == RecognitionOutcome.accepted.value
    keys = group_columns(prompts, by, metric="recognition")
    summary = aggregate(
        prompts,
        keys,
        [
            rows("prompts"),
            count(pl.col("outcome") != UNANSWERED, "decisions"),
            count(accepted, "accepted"),
            count(pl.col("outcome") == RecognitionOutcome.refused.value, "refused"),
            count(pl.col("outcome") == UNANSWERED, "unanswered"),
            pl.col("avoided_fee_fen")
            .filter(accepted)
            .sum()
            .cast(pl.Int64)
            .alias("avoided_fee_fen"),
        ],
    )
    return summary.with_columns(
        ratio("accepted", "decisions").alias("recognition_rate"),
        pl.col("accepted").alias("exams_saved"),
    )


def refusals(frames: Frames, *, by: Sequence[Dimension] = ("reason",)) -> pl.DataFrame:
    """Refusals per group (reason, clinician, clinic…) and each group's share of all refusals."""
    refused = recognition_prompts(frames).filter(
        pl.col("outcome") == RecognitionOutcome.refused.value
    )
    keys = group_columns(refused, by, metric="refusals")
    summary = aggregate(refused, keys, [rows("refused")])
    return summary.with_columns(
        pl.lit(refused.height, dtype=pl.Int64).alias("all_refused")
    ).with_columns(ratio("refused", "all_refused").alias("share"))
