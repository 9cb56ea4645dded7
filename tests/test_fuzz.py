"""Property-based tests (hypothesis) of the public API, the geometry and the post-processing: whatever the input,
only the documented errors, and results that are finite boxes of positive size inside the frame.

Each property is a plain ``check_*(case, weights)`` over one drawn ``case``; the tests here run a few dozen cases
each; ``tools/fuzz_campaign.py`` runs these same tests on 10,000 cases or more, through the environment variables
``SIAMTRACK_FUZZ_CASES`` (total over all properties), ``SIAMTRACK_FUZZ_SEED`` and ``SIAMTRACK_FUZZ_WEIGHTS``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from tracker import InputError, NotInitializedError, SiamFCTracker
from tracker import postprocess as pp
from tracker.geometry import Box, as_box, crop_and_resize, tiles_to_cover

SUITE = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip

# --- strategies -----------------------------------------------------------------------------------------------

SPECIAL = [0, -0.0, 1e-300, -1e-300, 1e300, -1e300, float("nan"), float("inf"), float("-inf"), 10**400, True]
numbers = st.one_of(
    st.floats(-60, 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-500, 500),
    st.sampled_from(SPECIAL),
)
box_likes = st.one_of(
    st.tuples(st.floats(-40, 60), st.floats(-40, 60), st.floats(-5, 90), st.floats(-5, 90)),  # mostly plausible
    st.tuples(numbers, numbers, numbers, numbers),
    st.lists(numbers, max_size=6),
    st.sampled_from([None, "abcd", (1, 2, (3,), 4), {"x": 1}, np.array([[1.0, 2.0, 3.0, 4.0]])]),
)


def sizes() -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(2, 48), st.integers(2, 48))


@st.composite
def valid_frames(draw: st.DrawFn, size: tuple[int, int] | None = None) -> np.ndarray:
    """Accepted frames: uint8 BGR, grey or BGRA of odd sizes, flat, noisy or smooth, contiguous or strided."""
    h, w = size or draw(sizes())
    layout = draw(st.sampled_from([(h, w, 3), (h, w), (h, w, 1), (h, w, 4)]))
    kind = draw(st.sampled_from(["constant", "noise", "gradient"]))
    if kind == "constant":
        image = np.full(layout, draw(st.integers(0, 255)), np.uint8)
    elif kind == "noise":
        image = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, layout, dtype=np.uint8)
    else:
        image = np.broadcast_to(np.linspace(0, 255, layout[-1]).astype(np.uint8), layout)
    return np.repeat(image, 2, axis=1)[:, ::2] if draw(st.booleans()) else image


@st.composite
def odd_frames(draw: st.DrawFn, size: tuple[int, int] | None = None) -> object:
    """Rejected frames: another dtype, channel count or rank, smaller than 2 x 2, or not an array."""
    h, w = size or draw(sizes())
    kind = draw(st.sampled_from(["dtype", "channels", "rank", "tiny", "list"]))
    if kind == "dtype":
        return np.zeros((h, w, 3), draw(st.sampled_from([np.float32, np.float64, np.uint16, np.int8, bool])))
    if kind == "channels":
        return np.zeros((h, w, draw(st.sampled_from([0, 2, 5]))), np.uint8)
    if kind == "rank":
        return np.zeros(draw(st.sampled_from([(h,), (1, h, w, 3), ()])), np.uint8)
    if kind == "tiny":
        return np.zeros(draw(st.sampled_from([(1, w, 3), (h, 1), (0, 0, 3)])), np.uint8)
    return np.zeros((h, w, 3), np.uint8).tolist()


def frames(size: tuple[int, int] | None = None) -> st.SearchStrategy:
    return st.one_of(valid_frames(size), valid_frames(size), valid_frames(size), odd_frames(size))


@st.composite
def plausible_boxes(draw: st.DrawFn, size: tuple[int, int]) -> tuple[float, ...]:
    """Boxes that overlap a frame of ``size`` (H, W): inside, across a border, or covering it."""
    h, w = size
    bw, bh = draw(st.floats(0.5, 2 * w)), draw(st.floats(0.5, 2 * h))
    return draw(st.floats(0.1 - bw, w - 0.1)), draw(st.floats(0.1 - bh, h - 0.1)), bw, bh


@st.composite
def call_sequences(draw: st.DrawFn) -> list[tuple]:
    """Random orders of init/update calls; most frames share one size so that tracking really runs."""
    size = draw(sizes())
    calls = []
    for i in range(draw(st.integers(1, 8))):
        frame = draw(frames(size if draw(st.integers(0, 4)) else None))
        if draw(st.sampled_from([True] + [i == 0] * 4)):  # mostly one init first, then now and then another
            calls.append(("init", frame, draw(st.one_of(*[plausible_boxes(size)] * 3, box_likes))))
        else:
            calls.append(("update", frame))
    return calls


# --- oracles --------------------------------------------------------------------------------------------------


def frame_size(frame: object) -> tuple[int, int] | None:
    """(H, W) of a frame the tracker must accept, else None."""
    ok = isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    ok = ok and (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3, 4)))
    return frame.shape[:2] if ok and min(frame.shape[:2]) >= 2 else None


def box_values(box: object) -> tuple[float, ...] | None:
    """The 4 finite numbers of a box with w, h > 0, else None."""
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError, OverflowError):
        return None
    if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[2] <= 0 or values[3] <= 0:
        return None
    return values


def assert_valid_result(result: object, size: tuple[int, int]) -> None:
    height, width = size
    x, y, w, h = result.box
    assert all(isinstance(v, float) and math.isfinite(v) for v in result.box), result
    assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= width and y + h <= height, (result, size)
    assert isinstance(result.score, float) and 0.0 <= result.score <= 1.0 and isinstance(result.found, bool)


# --- properties -----------------------------------------------------------------------------------------------


def check_tracker(calls: list[tuple], weights: Path | None) -> None:
    """Any call order: exactly the calls the oracle rejects raise, with InputError or NotInitializedError."""
    tracker = SiamFCTracker(weights, backend="torch", device="cpu")
    stream: tuple[int, int] | None = None  # frame size of the last successful init
    for call in calls:
        size = frame_size(call[1])
        if call[0] == "init":
            values = box_values(call[2])
            ok = size is not None and values is not None
            ok = ok and values[0] < size[1] and values[1] < size[0] and values[0] + values[2] > 0
            ok = ok and values[1] + values[3] > 0
            expected = None if ok else InputError
        else:
            ok = stream is not None and size == stream
            expected = None if ok else (NotInitializedError if stream is None else InputError)
        try:
            result = tracker.init(call[1], call[2]) if call[0] == "init" else tracker.update(call[1])
        except (InputError, NotInitializedError) as e:
            assert expected is not None and isinstance(e, expected), (call[0], e)
            continue
        assert expected is None, f"{call[0]} accepted input the oracle rejects"
        if call[0] == "init":
            stream = size
        else:
            assert_valid_result(result, size)


def check_as_box(box: object, weights: Path | None = None) -> None:
    try:
        b = as_box(box)
    except InputError:
        assert box_values(box) is None
        return
    assert box_values(box) == tuple(b) and b.w > 0 and b.h > 0


def check_clip(case: tuple, weights: Path | None = None) -> None:
    (x, y, w, h), width, height = case
    b = Box(x, y, w, h).clip(width, height)
    assert all(math.isfinite(v) for v in b), b
    assert b.w >= 1 and b.h >= 1 and b.x >= 0 and b.y >= 0 and b.x + b.w <= width and b.y + b.h <= height, b


def check_crop(case: tuple, weights: Path | None = None) -> None:
    (h, w), center, side, out = case
    image = np.random.default_rng(h * 100 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    crop = crop_and_resize(image, center, side, out, (1.0, 2.0, 3.0))
    assert crop.shape == (out, out, 3) and crop.dtype == np.uint8


def check_response(case: tuple, weights: Path | None = None) -> None:
    """PSR is finite, >= 0 and unchanged by a positive scale and offset; mosaic puts every tile in its place."""
    response, scale, offset, exclude = case
    clean = pp.finite(response)
    assert np.isfinite(clean).all() and clean.dtype == np.float32
    psr = pp.peak_to_sidelobe(clean, exclude)
    assert math.isfinite(psr) and psr >= 0
    top = np.sort(response.ravel())[::-1]
    if np.isfinite(response).all() and len(top) > 1 and top[0] - top[1] > 1e-4 * max(1.0, abs(top[0])):
        raw = response.astype(np.float64)  # a unique peak: the sidelobe mask cannot move
        moved = pp.peak_to_sidelobe(raw * scale + offset, exclude)
        assert moved == pytest.approx(pp.peak_to_sidelobe(raw, exclude), rel=1e-3, abs=1e-3)
    if clean.shape[0] == clean.shape[1]:
        r = clean.shape[0]
        tiles = np.stack([clean + k for k in range(6)])
        whole = pp.mosaic(tiles, 2, 3)
        assert whole.shape == (2 * r, 3 * r) and np.array_equal(whole[r:, 2 * r :], tiles[5])


def check_tiles(case: tuple, weights: Path | None = None) -> None:
    """The fewest tiles that reach: n tiles reach far enough, n - 1 do not."""
    reach, tile_reach, spacing = case
    n = tiles_to_cover(reach, tile_reach, spacing)
    assert n >= 1 and (n - 1) * spacing / 2 + tile_reach >= reach - 1e-6
    assert n == 1 or (n - 2) * spacing / 2 + tile_reach < reach


def response_map(h: int, w: int, seed: int, spread: float, holes: float) -> np.ndarray:
    """A float32 response with normal values of std ``spread`` and a share ``holes`` of NaN cells."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random((h, w)) < holes, np.nan, rng.normal(0, spread, (h, w))).astype(np.float32)


responses = st.builds(
    response_map, st.integers(1, 20), st.integers(1, 20), st.integers(0, 2**16),
    st.sampled_from([0.0, 1e-6, 1.0, 50.0, 1e5]), st.sampled_from([0.0, 0.0, 0.1]),
)  # fmt: skip
finite_floats = st.floats(-1e300, 1e300)
PROPERTIES: dict[str, tuple[Callable[[object, Path | None], None], st.SearchStrategy]] = {
    "tracker": (check_tracker, call_sequences()),
    "as_box": (check_as_box, box_likes),
    "clip": (check_clip, st.tuples(st.tuples(*[finite_floats] * 4), st.integers(1, 10**5), st.integers(1, 10**5))),
    "crop": (
        check_crop,
        st.tuples(
            st.tuples(st.integers(1, 30), st.integers(1, 30)),
            st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)),
            st.floats(1e-2, 1e4),
            st.integers(1, 64),
        ),
    ),  # fmt: skip
    "response": (check_response, st.tuples(responses, st.floats(1e-3, 1e3), st.floats(-1e3, 1e3), st.integers(0, 4))),
    "tiles": (check_tiles, st.tuples(st.floats(0, 1e5), st.floats(1, 100), st.floats(1, 300))),
}


def run_property(
    name: str,
    config: settings,
    weights: Path | None = None,
    count: Callable[[], None] | None = None,
    seed: int | None = None,
) -> None:
    """Run one property under ``config`` (and ``seed``); ``count`` is called once per case (the campaign's tally)."""
    check, strategy = PROPERTIES[name]

    def case(value: object) -> None:
        if count is not None:
            count()
        check(value, weights)

    test = given(strategy)(case)
    config(test if seed is None else hypothesis_seed(seed)(test))()


TRACKER_SHARE = 0.4  # of a campaign's cases: the API property matters most (and is the slowest)


def campaign_cases(name: str, total: int) -> int:
    """Cases for property ``name`` out of a campaign's ``total``: TRACKER_SHARE for the tracker, the rest split
    evenly among the others; at least one each."""
    others = len(PROPERTIES) - 1
    share = TRACKER_SHARE if name == "tracker" else (1 - TRACKER_SHARE) / others
    return max(1, round(total * share))


@pytest.mark.parametrize("name", PROPERTIES)
def test_property(name, handset_weights):
    total = os.environ.get("SIAMTRACK_FUZZ_CASES")
    if not total:  # the suite: a few dozen fixed cases
        run_property(name, SUITE, handset_weights)
        return
    config = settings(SUITE, max_examples=campaign_cases(name, int(total)), derandomize=False, print_blob=True)
    seed = os.environ.get("SIAMTRACK_FUZZ_SEED")
    weights = Path(os.environ.get("SIAMTRACK_FUZZ_WEIGHTS") or handset_weights)
    run_property(name, config, weights, seed=None if seed is None else int(seed))
