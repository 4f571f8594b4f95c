"""Malformed input, frame decoders: any bytes give frames or a FrameError with a clear message, quickly.

Hypothesis feeds the decoders arbitrary bytes; valid PNG, JPEG, BMP, TIFF, DICOM and AVI files that are
truncated, bit-flipped and overwritten; headers that declare absurd sizes (refused before any pixel is
decoded); and pydicom's bundled ultrasound files with PixelData removed or lying headers (Rows, Columns,
BitsAllocated, NumberOfFrames, SamplesPerPixel, PhotometricInterpretation, the transfer syntax...).

Every case is run and tallied rather than asserted one by one, so the figures count every case; the test
then fails with the first offending inputs. Runs are derandomized: the same cases every time.

The harness (limits, tally, seeds, mutations, lying headers) is tests/support/decoder_tally.py and
tests/support/decoder_inputs.py.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.support.decoder_inputs import (
    DECLARING,
    absurd_size,
    dicom_datasets,
    dicom_seeds,
    encoded_images,
    lying_dicom,
    max_rss_mib,
    mutated,
    mutated_dicom,
    mutated_image,
    raw_element,
    write_dicom,
)
from tests.support.decoder_tally import (
    ABSURD_REFUSAL_MS,
    ABSURD_RSS_GROWTH_MIB,
    CROPPED,
    DEADLINE_S,
    LIMITS,
    MAGIC_PREFIXES,
    MAX_FRAMES,
    MAX_PIXELS,
    MEDIA_TYPES,
    PLAIN,
    SLOW_CASE_S,
    Tally,
)
from usqa.service.frames import (
    FrameTooLargeError,
    TooManyFramesError,
    decode_bytes,
    prepare_frame,
    read_frames,
)
from usqa.service.frames.errors import (
    UNSUPPORTED_PHOTOMETRIC,
    NoPixelDataError,
    UnsupportedFormatError,
)

from ..service.conftest import frame_of_level
from ..service.frames.conftest import FrameBuilders
from .conftest import Figures, cases, fuzz, unclear_reason

# -- the properties --------------------------------------------------------------------------------------

SECTION = "malformed_input"


def test_arbitrary_bytes_give_frames_or_a_frame_error(figures: Figures) -> None:
    tally = Tally("arbitrary_bytes")

    @fuzz(cases(25, 1000), DEADLINE_S)
    @given(
        prefix=st.sampled_from(MAGIC_PREFIXES),
        body=st.binary(max_size=2048),
        media_type=st.sampled_from(MEDIA_TYPES),
        size=st.one_of(st.none(), st.tuples(st.integers(-2, 70000), st.integers(-2, 70000))),
    )
    @example(prefix=b"", body=b"", media_type=None, size=None)
    @example(prefix=b"", body=bytes(12), media_type="application/octet-stream", size=(3, 4))
    def case(prefix: bytes, body: bytes, media_type: str | None, size: tuple[int, int] | None) -> None:
        width, height = size if size is not None else (None, None)
        tally.run(
            f"{len(prefix + body)} bytes {(prefix + body)[:24]!r} as {media_type!r} size {size}",
            lambda: decode_bytes(prefix + body, media_type, width=width, height=height, **LIMITS),
        )

    case()
    tally.finish(figures)


def test_truncated_and_bit_flipped_images(figures: Figures) -> None:
    tally = Tally("damaged_images")

    @fuzz(cases(30, 1000), DEADLINE_S)
    @given(damaged=mutated_image(), declare=st.booleans())
    def case(damaged: tuple[str, bytes], declare: bool) -> None:
        kind, data = damaged
        media_type = f"image/{kind}" if declare else None
        tally.run(
            f"damaged {kind} of {len(data)} bytes as {media_type!r}",
            lambda: decode_bytes(data, media_type, **LIMITS),
        )

    case()
    tally.finish(figures)


def test_truncated_and_bit_flipped_dicom(figures: Figures) -> None:
    tally = Tally("damaged_dicom")

    @fuzz(cases(20, 500), DEADLINE_S)
    @given(damaged=mutated_dicom())
    def case(damaged: tuple[str, bytes]) -> None:
        name, data = damaged
        tally.run(
            f"damaged {name} ({len(data)} bytes)", lambda: decode_bytes(data, "application/dicom", **LIMITS)
        )

    case()
    tally.finish(figures)


def test_dicom_with_lying_headers_or_without_pixel_data(figures: Figures) -> None:
    tally = Tally("lying_dicom")

    @fuzz(cases(25, 600), DEADLINE_S)
    @given(lie=lying_dicom())
    def case(lie: tuple[str, bytes]) -> None:
        label, data = lie
        tally.run(label, lambda: decode_bytes(data, None, **LIMITS))

    case()
    tally.finish(figures)
    assert tally.refused.get(NoPixelDataError.code, 0) > 0 or tally.cases < 20


def test_absurd_declared_sizes_are_refused_before_decoding(figures: Figures) -> None:
    tally = Tally("absurd_sizes")
    rss_before = max_rss_mib()

    @fuzz(cases(15, 200), DEADLINE_S)
    @given(kind=st.sampled_from(sorted(DECLARING)), data=st.data())
    @example(kind="png", data=None)
    def case(kind: str, data: st.DataObject | None) -> None:
        build, largest = DECLARING[kind]
        width, height = (100_000, 100_000) if data is None else data.draw(absurd_size(largest))
        encoded = build(width, height)
        tally.run(
            f"{kind} declaring {width}x{height}",
            lambda: decode_bytes(encoded, None, **LIMITS),
            expect=FrameTooLargeError,
        )

    case()
    growth = max(0.0, max_rss_mib() - rss_before)
    figures.peak("decoders.absurd_size_refusal_ms", round(tally.slowest_s * 1000, 2))
    figures.peak("decoders.absurd_size_rss_growth_mib", round(growth, 1))
    tally.finish(figures)
    # The report holds the slowest refusal to ABSURD_REFUSAL_MS; here only a decode-sized delay fails.
    assert tally.slowest_s * 1000 < 10 * ABSURD_REFUSAL_MS
    assert growth < ABSURD_RSS_GROWTH_MIB


def test_absurd_frame_counts_are_refused(figures: Figures) -> None:
    tally = Tally("absurd_frame_counts")

    @fuzz(cases(5, 40), DEADLINE_S)
    @given(frames=st.integers(MAX_FRAMES + 1, 2**31 - 1))
    def case(frames: int) -> None:
        dataset = copy.deepcopy(dicom_datasets()["native-cine.dcm"])
        dataset["NumberOfFrames"] = raw_element(dataset, "NumberOfFrames", "IS", frames)
        data = write_dicom(dataset)
        tally.run(f"cine declaring {frames} frames", lambda: decode_bytes(data, None, **LIMITS))

    case()
    tally.finish(figures)
    assert set(tally.refused) <= {TooManyFramesError.code}


def test_damaged_files_on_disk(figures: Figures, tmp_path: Path) -> None:
    """`read_frames` (folders, the live page's uploads): content sniffing, then image, DICOM or video."""
    tally = Tally("damaged_files")
    video = tmp_path / "seed.avi"
    FrameBuilders.write_video(video, [frame_of_level(40 * i + 30, (24, 32), seed=i) for i in range(4)])
    seeds = {".avi": video.read_bytes(), ".dcm": dicom_seeds()["native-cine.dcm"]}
    seeds.update({f".{kind}": images[0] for kind, images in encoded_images().items()})
    target = tmp_path / "case"

    @fuzz(cases(10, 150), DEADLINE_S)
    @given(suffix=st.sampled_from(sorted(seeds)), name=st.sampled_from(["", ".mp4", ".bin"]), data=st.data())
    def case(suffix: str, name: str, data: st.DataObject) -> None:
        damaged = data.draw(mutated(seeds[suffix], header=256))
        path = target.with_suffix(name or suffix)
        path.write_bytes(damaged)
        tally.run(
            f"damaged {suffix} saved as {path.name} ({len(damaged)} bytes)",
            lambda: list(read_frames(path, **LIMITS)),
        )

    case()
    tally.finish(figures)


def test_raw_frames_of_any_shape_are_decoded_and_prepared(figures: Figures) -> None:
    """Regression: a 1 x 70,000 raw frame (70 kB) once needed a 4.9 GB letterbox square to be prepared."""
    tally = Tally("raw_shapes")

    @fuzz(cases(10, 200), DEADLINE_S)
    @given(
        shape=st.one_of(
            st.tuples(st.integers(1, 600), st.integers(1, 600)),
            st.tuples(st.just(1), st.integers(4097, 300_000)),
            st.tuples(st.integers(4097, 300_000), st.integers(1, 3)),
        ),
        level=st.integers(0, 255),
    )
    @example(shape=(1, 70_000), level=200)
    @example(shape=(70_000, 1), level=200)
    def case(shape: tuple[int, int], level: int) -> None:
        height, width = shape
        data = bytes([level]) * (width * height)
        tally.run(
            f"raw {width}x{height}",
            lambda: decode_bytes(data, "application/octet-stream", width=width, height=height, **LIMITS),
        )

    case()
    tally.finish(figures)
    assert tally.slowest_s < SLOW_CASE_S


def test_the_longest_frame_the_limit_allows_is_prepared_in_bounded_memory() -> None:
    """Regression: 1 x 16,777,216 is within the pixel limit; its letterbox square would be 281 TB."""
    rss_before = max_rss_mib()
    started = time.perf_counter()
    frame = np.full((1, MAX_PIXELS), 180, dtype=np.uint8)
    for spec in (PLAIN, CROPPED):
        assert prepare_frame(frame, spec).shape == (spec.size, spec.size)
        assert prepare_frame(frame.T, spec).shape == (spec.size, spec.size)
    assert time.perf_counter() - started < 10 * SLOW_CASE_S
    assert max_rss_mib() - rss_before < 512


@pytest.mark.parametrize(
    "message",
    [
        "corrupt PNG data: the header is truncated or invalid",
        "frame too large: 100000x100000 pixels exceeds the limit of 16777216 pixels per frame",
    ],
)
def test_the_project_messages_count_as_clear(message: str) -> None:
    assert unclear_reason(message) is None


def test_values_from_the_input_are_shown_printable_and_short(tmp_path: Path) -> None:
    """Regression: a lying PhotometricInterpretation came back in the message with its control bytes."""
    dataset = copy.deepcopy(dicom_datasets()["native-1.dcm"])
    dataset["PhotometricInterpretation"] = raw_element(
        dataset, "PhotometricInterpretation", "CS", "D\x1aC\x01"
    )
    with pytest.raises(UnsupportedFormatError) as photometric:
        decode_bytes(write_dicom(dataset), None, **LIMITS)
    assert str(photometric.value) == UNSUPPORTED_PHOTOMETRIC.format(value=ascii("D\x1aC\x01"))
    with pytest.raises(UnsupportedFormatError) as media:
        decode_bytes(b"\x89PNG", "image/" + "x" * 5000, **LIMITS)
    odd_name = tmp_path / "scan.\x01\x7f"
    odd_name.write_bytes(b"not an image at all")
    with pytest.raises(UnsupportedFormatError) as name:
        list(read_frames(odd_name, **LIMITS))
    for message in (str(photometric.value), str(media.value), str(name.value)):
        assert unclear_reason(message) is None, message
    assert len(str(media.value)) < 300
