"""CAS(ME)^3 part A as distributed: the sheet `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (sheet `label`,
header `Subject | Filename | Onset | Apex | Offset | AU | Objective class | emotion`) and the frames in
either distributed form, found under `--root` (up to four levels down):

    long videos   <Subject>/<Filename>/color/<n>.jpg          spNO.1/a/color/355.jpg  (depth/ is ignored)
    cut clips     <Subject>_<Filename>_<Onset>/<n>.jpg        Part_A_ME_clip/frame/spNO.1_a_355/355.jpg

One long video holds up to 17 micro-expressions, so a sample is a frame range inside a folder: its
`sample_id` carries the sheet's onset (`casme3/spNO.1/a_355`) and the manifest row names the range
(`first_frame..last_frame` = onset..offset). Subjects (`spNO.`/`spNo.`) and Filenames (`J`/`j`) match
case-insensitively. Where both forms are present a row takes its long video. The sheet is the one
given with `--annotations`, else the newest `*part_A_ME_label*.xlsx` under `--root`.

Known sheet faults (docs/datasets.md): two are corrected as documented (CORRECTIONS); a row whose
offset is 0, whose onset is after its offset, or whose apex lies outside onset..offset is rejected
with that reason, since its frame range inside the long video cannot be trusted.
"""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from components.data.classes import dataset_label_map
from components.data.samples import (Reject, Sample, cell_text, cut_clip_range, duplicate_row, frame_cells, subfolders,
                                     unsafe_name, walk)
from components.data.sheets import SheetLayout, read_sheet
from components.errors import UserError

LAYOUT = SheetLayout(
    dataset="casme3", title="CAS(ME)^3 part A", sheet="label", example_file="cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
    columns=("Subject", "Filename", "Onset", "Apex", "Offset", "emotion"), subject_prefix="spNO.", subject_width=0,
)
SHEET_PATTERN = "*part_a_me_label*.xlsx"
SEARCH_DEPTH = 4
_SUBJECT = re.compile(r"spno\.(\d+)", re.IGNORECASE)
_CLIP = re.compile(r"(spno\.\d+)_([^_]+)_(\d+)", re.IGNORECASE)

# (subject, filename, onset, apex, offset) as in the JpgIndex sheet -> (corrected values, why)
CORRECTIONS = {
    ("spNO.214", "c", 5, 5, 3460): ((5, 5, 34), "offset 3460 is a typing error for 34 (the official corrected sheet)"),
    ("spNO.216", "e", 0, 0, 25): ((1, 1, 25), "the video has no frame 0 (it starts at 1): onset and apex 0 read as 1"),
}


def canonical_subject(text: str) -> str | None:
    """`spNo.07` -> `spNO.7`; a bare number `7` -> `spNO.7`; anything else None."""
    match = _SUBJECT.fullmatch(text.strip()) or re.fullmatch(r"(\d+)", text.strip())
    return f"spNO.{int(match.group(1))}" if match else None


class Frames:
    """The frame folders under root: long videos by (subject, filename), cut clips by (subject, filename, onset)."""

    def __init__(self, root: Path):
        self.videos: dict[tuple[str, str], Path] = {}
        self.clips: dict[tuple[str, str, int], Path] = {}
        self.sheets: list[Path] = []
        for path in walk(root, SEARCH_DEPTH, descend=lambda p: not (_SUBJECT.fullmatch(p.name) or _CLIP.fullmatch(p.name))):
            if path.is_file() and fnmatch.fnmatch(path.name.lower(), SHEET_PATTERN):
                self.sheets.append(path)
            elif path.is_dir() and _SUBJECT.fullmatch(path.name):
                for video in subfolders(path):
                    colour = next((p for p in subfolders(video) if p.name.lower() == "color"), video)
                    self.videos.setdefault((canonical_subject(path.name), video.name.lower()), colour)
            elif path.is_dir() and (match := _CLIP.fullmatch(path.name)):
                key = (canonical_subject(match.group(1)), match.group(2).lower(), int(match.group(3)))
                self.clips.setdefault(key, path)
        if not self.videos and not self.clips:
            raise UserError(f"--root {root} holds neither CAS(ME)^3 frame layout (long videos spNO.<n>/<a-m>/color/"
                            "<n>.jpg, or cut clips Part_A_ME_clip/frame/spNO.<n>_<a-m>_<onset>/) within "
                            f"{SEARCH_DEPTH} levels; pass the folder that holds them")

    def sheet(self, annotations: Path | None) -> Path:
        if annotations is not None:
            return annotations
        if not self.sheets:
            raise UserError(f"--dataset casme3 needs the sheet {LAYOUT.example_file}: pass it with --annotations "
                            "or put it under --root")
        return sorted(self.sheets, key=lambda p: p.name.lower())[-1]


def collect(root: Path, annotations: Path | None, classes: int) -> tuple[list[Sample], list[Reject]]:
    label_map = dataset_label_map("casme3", classes)
    frames = Frames(root)
    sheet = frames.sheet(annotations)
    print(f"casme3: sheet {sheet}; {len(frames.videos)} long videos, {len(frames.clips)} cut clips")
    samples, rejects, seen, named = [], [], {}, set()
    for row_number, cells in read_sheet(sheet, LAYOUT):
        raw_subject, video, emotion = (cell_text(cells[c]) for c in ("Subject", "Filename", "emotion"))
        video = video.lower()
        subject = canonical_subject(raw_subject) or raw_subject
        *timing, bad_cell = frame_cells(cells, ("Onset", "Apex", "Offset"), row_number)
        timing = tuple(timing)
        named |= {(subject, video), (subject, video, timing[0])}
        sample_id = f"casme3/{subject}/{video}_{'' if timing[0] is None else timing[0]}"
        reject = Reject(sample_id, "casme3", f"casme3/{subject}", video, None, emotion, "")
        reject.reason, timing, note = _row_fault(row_number, raw_subject, video, subject, timing)
        reject.reason = bad_cell or reject.reason
        if not reject.reason and sample_id in seen:
            reject.reason = duplicate_row(row_number, seen[sample_id])
        if reject.reason:
            rejects.append(reject)
            continue
        seen[sample_id] = row_number
        sample = _sample(frames, sample_id, subject, video, emotion, label_map, timing)
        if sample is None:
            reject.reason = (f"no video folder {subject}/{video}/color nor clip folder "
                             f"{subject}_{video}_{sample_id.rsplit('_', 1)[1]} under --root")
            rejects.append(reject)
            continue
        sample.warnings += [f"{sample_id}: {note}"] if note else []
        samples.append(sample)
    return samples, rejects + _unclaimed(frames, named)


def _row_fault(row_number: int, raw_subject: str, video: str, subject: str,
               timing: tuple) -> tuple[str, tuple, str]:
    """(reject reason or '', timing after a documented correction, note on the correction)."""
    if not raw_subject or not video:
        return f"sheet row {row_number} has no {'Subject' if not raw_subject else 'Filename'}", timing, ""
    if not _SUBJECT.fullmatch(subject) or unsafe_name(video):
        return f"sheet row {row_number} names no spNO.<n> subject and plain Filename ({raw_subject!r}, {video!r})", \
            timing, ""
    note = ""
    if (subject, video, *timing) in CORRECTIONS:
        corrected, why = CORRECTIONS[(subject, video, *timing)]
        note = f"sheet {'/'.join(map(str, timing))} corrected to {'/'.join(map(str, corrected))}: {why}"
        timing = corrected
    onset, apex, offset = timing
    if onset is None or offset is None:
        return f"sheet row {row_number} has no {'Onset' if onset is None else 'Offset'} frame number", timing, ""
    if offset == 0:
        return "offset is 0 in the sheet (a known fault); the true offset is unknown", timing, ""
    if onset > offset:
        return f"onset {onset} is after offset {offset} in the sheet (a known fault)", timing, ""
    if apex is not None and not onset <= apex <= offset:
        return f"apex {apex} lies outside onset..offset {onset}..{offset} in the sheet (a known fault)", timing, ""
    return "", timing, note


def _sample(frames: Frames, sample_id: str, subject: str, video: str, emotion: str, label_map,
            timing: tuple) -> Sample | None:
    """The row's sample in its long video, else in its cut clip; None where neither folder exists."""
    onset, apex, offset = timing
    sheet_onset = int(sample_id.rsplit("_", 1)[1])
    base = dict(dataset="casme3", subject=f"casme3/{subject}", video_id=video, sample_id=sample_id, emotion=emotion,
                label_map=label_map, onset=onset, apex=apex, offset=offset)
    if (subject, video) in frames.videos:
        return Sample(frames_dir=frames.videos[(subject, video)], first_frame=onset, last_frame=offset, **base)
    clip = frames.clips.get((subject, video, sheet_onset))
    if clip is None:
        return None
    first, last, note = cut_clip_range(clip, onset, offset)
    return Sample(frames_dir=clip, first_frame=first, last_frame=last,
                  warnings=[f"{sample_id}: {note}"] if note else [], **base)


def _unclaimed(frames: Frames, named: set[tuple]) -> list[Reject]:
    """Frame folders that no sheet row names: (subject, filename) for videos, plus the onset for clips."""
    rejects = [Reject(f"casme3/{subject}/{video}", "casme3", f"casme3/{subject}", video, path, "",
                      "video folder has no row in the annotation sheet")
               for (subject, video), path in sorted(frames.videos.items()) if (subject, video) not in named]
    rejects += [Reject(f"casme3/{subject}/{video}_{onset}", "casme3", f"casme3/{subject}", video, path, "",
                       "clip folder has no row in the annotation sheet")
                for (subject, video, onset), path in sorted(frames.clips.items()) if (subject, video, onset) not in named]
    return rejects
