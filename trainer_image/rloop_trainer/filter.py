"""Filter phase: keep the correct rollouts of hard prompts -> the expert set D_expert_i.

A prompt is hard when its success rate over ALL its rollouts in the DAPO phase is
below `hard_threshold` (RLoop, arXiv 2511.04285, section 3: 0.1); "success" is the
verifier's `correct`, never the shaped `reward`. Prompts with no correct rollout
are hard but give nothing to imitate.

The phase streams, so memory stays bounded for tens of millions of rows:
  pass 1  reads only (prompt_id, correct), batch by batch -> per-prompt counts;
  pass 2  reads every batch again and spills the correct rows of hard prompts
          (the candidates) to a local parquet file, keeping ~20 bytes per
          candidate in memory (prompt, response digest, selection key);
  pass 3  (only for dedupe / max_per_prompt) copies the chosen candidates.
Which duplicate survives and which rows a cap keeps depends only on `seed` and
each row's identity, never on the order files are listed or read in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rloop_trainer import fencing, progress, store, termination
from rloop_trainer.config import FilterPhaseConfig
from rloop_trainer.errors import PhaseError
from rloop_trainer.schema import EXPERT_SCHEMA, TRAJECTORY_SCHEMA, check_schema
from rloop_trainer.tracking.names import report_metrics
from rloop_trainer.tracking.session import phase_trackers

log = logging.getLogger(__name__)

# Small batches and unbuffered column reads keep pass 2 at about one batch of every
# column plus a 1 MiB read buffer per column, whatever the row-group size. Pass 1
# reads two narrow columns, where large batches are cheap and much faster.
BATCH_ROWS = 8 * 1024
COUNT_BATCH_ROWS = 256 * 1024
READ_BUFFER_BYTES = 1 << 20
HISTOGRAM_BINS = 10
_COUNT_COLUMNS = ["prompt_id", "correct"]
_IDENTITY_COLUMNS = ["prompt_id", "step", "generation_round", "sample_index"]
_CANDIDATE_COLUMNS = sorted(
    {
        *_COUNT_COLUMNS,
        *_IDENTITY_COLUMNS,
        *(n for n in EXPERT_SCHEMA.names if n in TRAJECTORY_SCHEMA.names),
    }
)


@dataclass(frozen=True)
class FilterReport:
    """What `report.json` holds. The operator copies `rollouts`, `hard_prompts` and
    `kept_samples` into the run's status (rloop_operator.stage_reports): keep those names.

    hard_prompts counts every prompt below the threshold; only the
    hard_prompts_with_successes give candidates (their correct rollouts), of which
    kept_samples survive dedupe and the per-prompt cap.
    """

    trajectory_files: int
    rollouts: int
    prompts: int
    hard_prompts: int
    prompts_with_zero_successes: int
    hard_prompts_with_successes: int
    candidate_samples: int
    duplicates_dropped: int
    dropped_over_cap: int
    kept_samples: int
    hard_threshold: float
    max_per_prompt: int
    dedupe: bool
    seed: int
    success_rate_histogram: dict[str, int]


def hard_prompt_mask(successes: np.ndarray, rollouts: np.ndarray, threshold: float) -> np.ndarray:
    """(prompts,) bool: success rate strictly below `threshold`.

    IEEE division is correctly rounded, so a rate that equals the threshold
    (1/10 vs 0.1) compares equal and is not hard.
    """
    rates: np.ndarray = successes / rollouts
    return rates < threshold


def success_rate_histogram(
    successes: np.ndarray, rollouts: np.ndarray, bins: int = HISTOGRAM_BINS
) -> dict[str, int]:
    """Prompts per success-rate bin [i/bins, (i+1)/bins); a rate of 1 joins the last bin.

    Bins come from integer arithmetic so a rate of exactly 0.3 lands in [0.3, 0.4).
    """
    index = np.minimum((successes.astype(np.int64) * bins) // rollouts, bins - 1)
    counts = np.bincount(index, minlength=bins)
    return {f"[{i / bins:.1f},{(i + 1) / bins:.1f})": int(counts[i]) for i in range(bins)}


def selection_key(seed: int, prompt_id: str, step: int, generation_round: int, sample: int) -> int:
    """A seeded pseudo-random rank of one rollout, a function of its identity only."""
    text = f"{seed}\0{prompt_id}\0{step}\0{generation_round}\0{sample}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def response_digest(response: str) -> int:
    """64-bit digest standing in for the response text when finding exact duplicates."""
    return int.from_bytes(hashlib.blake2b(response.encode(), digest_size=8).digest(), "little")


def choose_expert_rows(
    prompt_codes: np.ndarray,
    digests: np.ndarray,
    keys: np.ndarray,
    dedupe: bool,
    max_per_prompt: int,
) -> tuple[np.ndarray, int, int]:
    """Which candidates become expert samples.

    Args: (candidates,) arrays of prompt code, response digest, selection key.
    Returns: (candidates,) keep mask, duplicates dropped, rows dropped over the cap.
    Within a prompt, the candidate with the smallest key wins among exact
    duplicates, and the `max_per_prompt` smallest keys survive the cap (0: no cap).
    """
    order = np.lexsort((keys, prompt_codes))
    keep = np.ones(len(order), dtype=bool)
    duplicates = 0
    if dedupe and len(order):
        by_response = np.lexsort((keys, digests, prompt_codes))
        same_as_previous = np.zeros(len(order), dtype=bool)
        same_as_previous[1:] = (np.diff(prompt_codes[by_response]) == 0) & (
            np.diff(digests[by_response].astype(np.int64)) == 0
        )
        keep[by_response[same_as_previous]] = False
        duplicates = int(same_as_previous.sum())
    over_cap = 0
    if max_per_prompt and len(order):
        kept_in_order = order[keep[order]]
        codes = prompt_codes[kept_in_order]
        group_start = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
        rank = np.arange(len(codes)) - np.repeat(
            group_start, np.diff(np.r_[group_start, len(codes)])
        )
        dropped = kept_in_order[rank >= max_per_prompt]
        keep[dropped] = False
        over_cap = len(dropped)
    return keep, duplicates, over_cap


class TrajectoryFiles:
    """The trajectory parquet files of one DAPO phase, opened one at a time."""

    def __init__(self, uris: Sequence[str]) -> None:
        self.uris = list(uris)

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
        for uri in self.uris:
            parquet = _open_parquet(uri)
            check_schema(f"trajectory file {uri}", parquet.schema_arrow, TRAJECTORY_SCHEMA, columns)
            yield from parquet.iter_batches(batch_size=batch_rows, columns=columns)
            progress.advanced()


def _open_parquet(uri: str) -> pq.ParquetFile:
    """Local files are read in place; an s3 object is held in memory while it is read."""
    try:
        if uri.startswith("s3://"):
            return pq.ParquetFile(pa.BufferReader(store.read_bytes(uri)))
        return pq.ParquetFile(
            uri.removeprefix("file://"), pre_buffer=False, buffer_size=READ_BUFFER_BYTES
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise PhaseError(f"trajectory file {uri} is not a readable parquet file: {exc}") from exc


def count_rollouts(files: TrajectoryFiles) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Pass 1: (prompt ids, rollouts per prompt, correct rollouts per prompt)."""
    totals: pa.Table | None = None
    for batch in files.batches(_COUNT_COLUMNS, COUNT_BATCH_ROWS):
        partial = (
            pa.Table.from_batches([batch])
            .group_by("prompt_id")
            .aggregate([("correct", "count"), ("correct", "sum")])
        )
        partial = partial.rename_columns({"correct_count": "rollouts", "correct_sum": "successes"})
        merged = partial if totals is None else pa.concat_tables([totals, partial])
        totals = (
            merged.group_by("prompt_id")
            .aggregate([("rollouts", "sum"), ("successes", "sum")])
            .rename_columns({"rollouts_sum": "rollouts", "successes_sum": "successes"})
        )
    if totals is None:
        return pa.array([], pa.string()), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (
        totals["prompt_id"].combine_chunks(),
        totals["rollouts"].to_numpy().astype(np.int64),
        totals["successes"].to_numpy().astype(np.int64),
    )


@dataclass
class _Candidates:
    prompt_codes: list[np.ndarray]
    digests: list[int]
    keys: list[int]


def spill_candidates(
    files: TrajectoryFiles,
    solved_ids: pa.Array,
    solved_rates: pa.Array,
    seed: int,
    spill_path: Path,
) -> _Candidates:
    """Pass 2: write the correct rows of `solved_ids` (hard prompts) to `spill_path`."""
    candidates = _Candidates([], [], [])
    with pq.ParquetWriter(spill_path, EXPERT_SCHEMA) as writer:
        for batch in files.batches(_CANDIDATE_COLUMNS, BATCH_ROWS):
            codes = pc.index_in(batch["prompt_id"], value_set=solved_ids)
            rows = batch.filter(pc.and_(batch["correct"], pc.is_valid(codes)))
            if rows.num_rows == 0:
                continue
            row_codes = pc.index_in(rows["prompt_id"], value_set=solved_ids)
            rates = pc.take(solved_rates, row_codes)
            columns = [
                rates if name == "prompt_success_rate" else rows[name]
                for name in EXPERT_SCHEMA.names
            ]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=EXPERT_SCHEMA))
            candidates.prompt_codes.append(row_codes.to_numpy(zero_copy_only=False))
            candidates.digests += [response_digest(r) for r in rows["response"].to_pylist()]
            candidates.keys += [
                selection_key(seed, *identity)
                for identity in zip(*(rows[c].to_pylist() for c in _IDENTITY_COLUMNS), strict=True)
            ]
    return candidates


def copy_chosen(spill_path: Path, keep: np.ndarray, output_path: Path) -> None:
    """Pass 3: copy the kept rows of the spill file, in order."""
    offset = 0
    with pq.ParquetWriter(output_path, EXPERT_SCHEMA) as writer:
        for batch in pq.ParquetFile(spill_path).iter_batches(batch_size=BATCH_ROWS):
            writer.write_batch(batch.filter(pa.array(keep[offset : offset + batch.num_rows])))
            offset += batch.num_rows


def build_expert_set(
    files: TrajectoryFiles, config: FilterPhaseConfig, output_path: Path
) -> FilterReport:
    """Run the three passes over `files`; write the expert set to local `output_path`."""
    prompt_ids, rollouts, successes = count_rollouts(files)
    hard = hard_prompt_mask(successes, rollouts, config.hard_threshold)
    solved_hard = hard & (successes > 0)
    solved_ids = pc.filter(prompt_ids, pa.array(solved_hard))
    solved_rates = pa.array((successes[solved_hard] / rollouts[solved_hard]).astype(np.float32))
    spill_path = output_path.with_name(output_path.name + ".candidates")
    candidates = spill_candidates(files, solved_ids, solved_rates, config.seed, spill_path)
    codes = np.concatenate(candidates.prompt_codes) if candidates.prompt_codes else np.zeros(0)
    keep, duplicates, over_cap = choose_expert_rows(
        codes.astype(np.int64),
        np.array(candidates.digests, dtype=np.uint64),
        np.array(candidates.keys, dtype=np.uint64),
        config.dedupe,
        config.max_per_prompt,
    )
    if keep.all():
        spill_path.replace(output_path)
    else:
        copy_chosen(spill_path, keep, output_path)
        spill_path.unlink()
    return FilterReport(
        trajectory_files=len(files.uris),
        rollouts=int(rollouts.sum()),
        prompts=len(prompt_ids),
        hard_prompts=int(hard.sum()),
        prompts_with_zero_successes=int((successes == 0).sum()),
        hard_prompts_with_successes=int(solved_hard.sum()),
        candidate_samples=len(keep),
        duplicates_dropped=duplicates,
        dropped_over_cap=over_cap,
        kept_samples=int(keep.sum()),
        hard_threshold=config.hard_threshold,
        max_per_prompt=config.max_per_prompt,
        dedupe=config.dedupe,
        seed=config.seed,
        success_rate_histogram=success_rate_histogram(successes, rollouts),
    )


def run_filter_phase(config: FilterPhaseConfig) -> FilterReport:
    """`rloop-trainer filter`: trajectories -> expert_uri, report_uri; output_uri/_SUCCESS."""
    uris = store.list_uris(config.trajectories_uri, suffix=".parquet")
    if not uris:
        raise PhaseError(
            f"no *.parquet trajectory files under trajectories_uri={config.trajectories_uri}; "
            "check the URI and that the iteration's DAPO phase finished"
        )
    with fencing.claimed(config.output_uri), phase_trackers(config, "filter") as trackers:
        report = filter_trajectories(config, uris)
        trackers.log_metrics(report_metrics("filter", asdict(report)), config.run.rl_step)
        return report


def filter_trajectories(config: FilterPhaseConfig, uris: list[str]) -> FilterReport:
    log.info("filtering %d trajectory files under %s", len(uris), config.trajectories_uri)
    store.retract_marker(config.output_uri)
    staging = Path(tempfile.mkdtemp(prefix="rloop-filter-"))
    try:
        report = build_expert_set(TrajectoryFiles(uris), config, staging / "data.parquet")
        store.write_bytes(config.expert_uri, (staging / "data.parquet").read_bytes())
        store.write_bytes(config.report_uri, (json.dumps(asdict(report), indent=2) + "\n").encode())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if report.kept_samples == 0:
        log.warning("no expert samples: the RFT phase will carry the policy over unchanged")
    store.write_marker(config.output_uri, asdict(report))
    termination.write_report(asdict(report))
    log.info(
        "%d rollouts, %d hard prompts, %d expert samples -> %s",
        report.rollouts,
        report.hard_prompts,
        report.kept_samples,
        config.expert_uri,
    )
    return report
