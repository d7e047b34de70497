"""The ``retention`` section of a brand policy (validated with the rest of worker/policy.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker import defaults

DAY_SECONDS = 86_400


class Retention(BaseModel):
    """How long this brand's personal data is kept.

    Decisions, corrections and audit entries are deleted ``active_days`` after they were
    made (conversation history sooner: it already expires after 30 days without messages);
    with ``archive`` on, ``replyguard retention sweep`` first writes them to gzip JSONL files
    under REPLYGUARD_ARCHIVE_DIR, which it deletes ``archive_days`` after writing them.
    Fractions of a day are allowed (``0.5`` is twelve hours).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    active_days: float = Field(
        default=defaults.RETENTION_ACTIVE_DAYS,
        gt=0,
        le=3650,
        description="Days decisions, corrections and audit entries are kept in Redis.",
    )
    archive: bool = Field(default=False, description="Archive what expires to gzip JSONL files before deleting it.")
    archive_days: float = Field(
        default=defaults.RETENTION_ARCHIVE_DAYS,
        gt=0,
        le=36500,
        description="Days an archive file is kept after it was written.",
    )

    @model_validator(mode="after")
    def _active_window_is_a_second_or_more(self) -> "Retention":
        if self.active_days * DAY_SECONDS < defaults.RETENTION_MIN_ACTIVE_SECONDS:
            raise ValueError(
                f"active_days {self.active_days} is shorter than {defaults.RETENTION_MIN_ACTIVE_SECONDS:g} second"
            )
        return self

    @model_validator(mode="after")
    def _archive_days_only_with_archive(self) -> "Retention":
        if not self.archive and "archive_days" in self.model_fields_set:
            raise ValueError("archive_days is set but archive is off (set archive: true, or drop archive_days)")
        return self

    @property
    def active_seconds(self) -> int:
        return max(1, int(self.active_days * DAY_SECONDS))

    @property
    def archive_seconds(self) -> int:
        return max(1, int(self.archive_days * DAY_SECONDS))

    @property
    def decision_ttl(self) -> int:
        """TTL of a decision key: active_days, plus a grace period when the sweep must archive it first."""
        return self.active_seconds + (defaults.RETENTION_ARCHIVE_GRACE_SECONDS if self.archive else 0)

    @property
    def person_index_ttl(self) -> int:
        return self.decision_ttl * defaults.PERSON_INDEX_TTL_FACTOR

    def history_ttl(self, conversation_ttl: int) -> int:
        """Conversation history and state: their usual TTL, never longer than the active window."""
        return min(conversation_ttl, self.active_seconds)
