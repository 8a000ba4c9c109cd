"""Resumable zarr image stores, their storage codecs, and batch-aligned shards."""

import numpy as np
import pytest
import zarr

from sda_core.store import (
    JPEG_QUALITY,
    STORAGE_CODECS,
    StoreError,
    StoreSequence,
    consecutive_runs,
    fill_store,
    finalize,
    open_partial,
    open_store,
    shard_range,
    write_store,
)
from sda_core.tasks import TASKS

MAPS = TASKS["segmentation"].label_layout(4)  # a label map per image, uint8, 255 unwritten

LOSSLESS_CODECS = [codec for codec in STORAGE_CODECS if codec not in JPEG_QUALITY]
# least PSNR (dB) of each lossy codec on a natural 256x256 photo; libjpeg-turbo gives 32.5 (q75)
# and 34.1 (q85) on the astronaut, and the margin allows for other libjpeg builds
LOSSY_MIN_PSNR = {"jpeg-q75": 30.0, "jpeg-q85": 32.0}


@pytest.mark.parametrize("num_items, num_shards, batch", [(10, 3, 4), (719, 2, 128), (5, 4, 2), (3, 5, 1)])
def test_shards_tile_the_index_space_on_batch_boundaries(num_items, num_shards, batch):
    ranges = [shard_range(num_items, num_shards, k, batch) for k in range(num_shards)]
    assert ranges[0][0] == 0 and ranges[-1][1] == num_items
    for (_, stop), (start, _) in zip(ranges, ranges[1:]):
        assert stop == start
    assert all(start % batch == 0 for start, _ in ranges)
    with pytest.raises(ValueError):
        shard_range(num_items, num_shards, num_shards, batch)


def _images(n, value=None):
    rng = np.random.default_rng(n)
    images = (
        rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) if value is None else np.full((n, 4, 4, 3), value, np.uint8)
    )
    return images, np.arange(n, dtype=np.int64)


def test_killed_fill_resumes_without_recomputing_finished_chunks(tmp_path):
    output = tmp_path / "out.zarr"
    images, labels = _images(10)
    calls = []

    def compute(start, stop):
        calls.append(start)
        if len(calls) == 3 and not resumed:
            raise KeyboardInterrupt  # the job is killed while computing its third chunk
        return images[start:stop], labels[start:stop]

    resumed = False
    with pytest.raises(KeyboardInterrupt):
        fill_store(output, 10, (4, 4, 3), 3, {"p": 1}, compute)
    assert not output.exists() and (tmp_path / "out.zarr.partial").exists()
    resumed, calls = True, []
    fill_store(output, 10, (4, 4, 3), 3, {"p": 1}, compute)
    assert calls == [6, 9]  # chunks 0 and 1 were done before the kill
    stored = open_store(output)
    np.testing.assert_array_equal(stored.read()[0], images)
    np.testing.assert_array_equal(stored.read()[1], labels)


def test_consecutive_runs_are_cut_at_gaps_and_at_the_longest():
    assert consecutive_runs([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]
    assert consecutive_runs([0, 1, 3, 4, 5, 9], 3) == [[0, 1], [3, 4, 5], [9]]
    assert consecutive_runs([2, 5], 1) == [[2], [5]]
    assert consecutive_runs([], 4) == []


def test_calls_over_several_chunks_write_the_same_store_and_resume_per_call(tmp_path):
    """A batch of three chunks (batch_size auto): one compute call per run of pending chunks; a kill in
    the second call keeps the first call's chunks, and the resumed store equals a chunk-by-chunk one."""
    images, labels = _images(20)
    calls = []

    def compute(start, stop):
        calls.append((start, stop))
        if len(calls) == 2 and not resumed:
            raise KeyboardInterrupt
        return images[start:stop], labels[start:stop]

    resumed = False
    with pytest.raises(KeyboardInterrupt):
        fill_store(tmp_path / "wide.zarr", 20, (4, 4, 3), 3, {}, compute, chunks_per_call=3)
    assert calls == [(0, 9), (9, 18)]
    resumed, calls = True, []
    fill_store(tmp_path / "wide.zarr", 20, (4, 4, 3), 3, {}, compute, chunks_per_call=3)
    assert calls == [(9, 18), (18, 20)]
    write_store(tmp_path / "narrow.zarr", images, labels, 3, {})
    wide, narrow = open_store(tmp_path / "wide.zarr").read(), open_store(tmp_path / "narrow.zarr").read()
    # the batch is measured (a callable) only when chunks are pending: not for an empty shard
    fill_store(tmp_path / "empty.zarr", 0, (4, 4, 3), 3, {}, compute, chunks_per_call=lambda: pytest.fail("asked"))
    fill_store(tmp_path / "asked.zarr", 4, (4, 4, 3), 3, {}, compute, chunks_per_call=lambda: 2)
    np.testing.assert_array_equal(wide[0], narrow[0])
    np.testing.assert_array_equal(wide[1], narrow[1])


def test_all_zero_chunks_count_as_done(tmp_path):
    """zarr does not store all-zero chunks; completion comes from the flags, not the chunk files."""
    images, labels = _images(4, value=0)
    write_store(tmp_path / "zeros.zarr", images, labels * 0, chunk_size=2, fingerprint={})
    np.testing.assert_array_equal(open_store(tmp_path / "zeros.zarr").read()[0], images)


def test_partial_with_other_parameters_is_discarded(tmp_path):
    output = tmp_path / "out.zarr"
    store = open_partial(output, 4, (4, 4, 3), 2, {"scale": 1.0})
    store.write_chunk(0, *_images(2))
    assert open_partial(output, 4, (4, 4, 3), 2, {"scale": 1.0}).pending_chunks() == [1]
    assert open_partial(output, 4, (4, 4, 3), 2, {"scale": 2.0}).pending_chunks() == [0, 1]


def test_incomplete_store_cannot_be_finalised_or_read(tmp_path):
    store = open_partial(tmp_path / "out.zarr", 4, (4, 4, 3), 2, {})
    store.write_chunk(1, *_images(2))
    with pytest.raises(StoreError, match="unfinished"):
        finalize(store, tmp_path / "out.zarr")
    with pytest.raises(StoreError, match="incomplete"):
        open_store(store.path)
    with pytest.raises(FileNotFoundError, match="nowhere.zarr"):
        open_store(tmp_path / "nowhere.zarr")


def test_wrong_chunk_shape_is_rejected(tmp_path):
    store = open_partial(tmp_path / "out.zarr", 4, (4, 4, 3), 2, {})
    with pytest.raises(StoreError, match="chunk 0"):
        store.write_chunk(0, *_images(3))


def test_store_sequence_reads_across_shards(tmp_path):
    images, labels = _images(7)
    write_store(tmp_path / "a.zarr", images[:3], labels[:3], 2, {})
    write_store(tmp_path / "b.zarr", images[3:], labels[3:], 2, {})
    sequence = StoreSequence([tmp_path / "a.zarr", tmp_path / "b.zarr"])
    assert len(sequence) == 7
    got, got_labels = sequence.read(2, 6)
    np.testing.assert_array_equal(got, images[2:6])
    np.testing.assert_array_equal(got_labels, labels[2:6])
    rows, row_labels = sequence.read_rows(np.array([6, 0, 4, 2, 3]))  # any order, across both stores
    np.testing.assert_array_equal(rows, images[[6, 0, 4, 2, 3]])
    np.testing.assert_array_equal(row_labels, labels[[6, 0, 4, 2, 3]])
    np.testing.assert_array_equal(sequence.labels(), labels)


def test_more_shards_than_batches_gives_empty_finished_stores(tmp_path):
    assert shard_range(3, 4, 0, 4) == (0, 0) and shard_range(3, 4, 3, 4) == (0, 3)
    fill_store(tmp_path / "empty.zarr", 0, (4, 4, 3), 4, {}, lambda start, stop: _images(0))
    images, labels = _images(3)
    write_store(tmp_path / "full.zarr", images, labels, 4, {})
    sequence = StoreSequence([tmp_path / "empty.zarr", tmp_path / "full.zarr"])
    np.testing.assert_array_equal(sequence.read(0, 3)[0], images)


@pytest.mark.parametrize("codec", LOSSLESS_CODECS)
def test_lossless_codecs_round_trip_bit_exactly(tmp_path, codec):
    images, labels = _images(7)  # a partial last chunk,
    images[4:6] = 0  # an all-zero chunk (not stored by zarr)
    images[0] = 255  # and the wrap-around of 8-bit differences
    write_store(tmp_path / "out.zarr", images, labels, 2, {}, codec=codec)
    stored = open_store(tmp_path / "out.zarr")
    assert stored.attrs["codec"] == codec
    np.testing.assert_array_equal(stored.read()[0], images)
    np.testing.assert_array_equal(stored.read()[1], labels)


def _photo() -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    return (resize(data.astronaut(), (256, 256), anti_aliasing=True) * 255).round().astype(np.uint8)


@pytest.mark.parametrize("codec", sorted(JPEG_QUALITY))
def test_lossy_codecs_stay_within_their_error_bound_on_a_photo(tmp_path, codec):
    photo = _photo()
    images = np.stack([photo, photo[:, ::-1], np.zeros_like(photo)])
    write_store(tmp_path / "out.zarr", images, np.arange(3), 2, {}, codec=codec)
    stored = open_store(tmp_path / "out.zarr")
    assert stored.chunk_size == 2 and stored.num_chunks == 2  # one image per zarr chunk, two per shard
    got = stored.read()[0]
    assert got.shape == images.shape and got.dtype == np.uint8
    error = got[:2].astype(np.float64) - images[:2]
    assert 10 * np.log10(255**2 / np.mean(error**2)) >= LOSSY_MIN_PSNR[codec]
    assert np.abs(error).mean() <= 5.0  # grey levels
    np.testing.assert_array_equal(got[2], 0)  # an empty image is not stored, so it stays exact


def test_jpeg_stores_one_channel_images_and_refuses_other_channel_counts(tmp_path):
    grey = _photo()[..., :1]
    write_store(tmp_path / "grey.zarr", grey[None], np.zeros(1), 1, {}, codec="jpeg-q85")
    error = open_store(tmp_path / "grey.zarr").read()[0][0].astype(np.float64) - grey
    assert 10 * np.log10(255**2 / np.mean(error**2)) >= LOSSY_MIN_PSNR["jpeg-q85"]
    with pytest.raises(ValueError, match="1 or 3 channels"):
        open_partial(tmp_path / "rgba.zarr", 1, (8, 8, 4), 1, {}, codec="jpeg-q85")


@pytest.mark.parametrize("codec", list(STORAGE_CODECS))
def test_partial_written_with_another_codec_is_discarded(tmp_path, codec):
    output = tmp_path / "out.zarr"
    other = "none" if codec != "none" else "zstd"
    open_partial(output, 4, (4, 4, 3), 2, {}, codec=codec).write_chunk(0, *_images(2))
    assert open_partial(output, 4, (4, 4, 3), 2, {}, codec=codec).pending_chunks() == [1]
    assert open_partial(output, 4, (4, 4, 3), 2, {}, codec=other).pending_chunks() == [0, 1]


def test_a_partial_without_a_recorded_codec_is_discarded(tmp_path):
    """Its images may be encoded any way: nothing in it can be resumed."""
    images, labels = _images(4)
    store = open_partial(tmp_path / "out.zarr", 4, (4, 4, 3), 2, {})
    store.write_chunk(0, images[:2], labels[:2])
    del zarr.open_group(str(tmp_path / "out.zarr.partial"), mode="r+").attrs["codec"]
    assert open_partial(tmp_path / "out.zarr", 4, (4, 4, 3), 2, {}).pending_chunks() == [0, 1]


def test_unknown_codec_is_refused_naming_the_valid_ones_and_keeps_the_partial(tmp_path):
    output = tmp_path / "out.zarr"
    open_partial(output, 4, (4, 4, 3), 2, {}).write_chunk(0, *_images(2))
    with pytest.raises(ValueError, match="unknown storage codec 'jpeg'; valid: zstd, none, delta-zstd"):
        open_partial(output, 4, (4, 4, 3), 2, {}, codec="jpeg")
    assert open_partial(output, 4, (4, 4, 3), 2, {}).pending_chunks() == [1]


def _label_maps(n):
    return np.random.default_rng(100 + n).integers(0, 11, (n, 4, 4), dtype=np.uint8)


def test_label_maps_are_stored_with_their_images_and_resume_per_chunk(tmp_path):
    output = tmp_path / "scenes.zarr"
    images, maps = _images(7)[0], _label_maps(7)
    calls = []

    def compute(start, stop):
        calls.append(start)
        if len(calls) == 2 and not resumed:
            raise KeyboardInterrupt  # killed while computing the second chunk
        return images[start:stop], maps[start:stop]

    resumed = False
    with pytest.raises(KeyboardInterrupt):
        fill_store(output, 7, (4, 4, 3), 3, {}, compute, labels=MAPS)
    resumed, calls = True, []
    fill_store(output, 7, (4, 4, 3), 3, {}, compute, labels=MAPS)
    assert calls == [3, 6]
    stored = open_store(output)
    assert stored.label_shape == (4, 4) and stored.labels.dtype == np.uint8
    np.testing.assert_array_equal(stored.read()[1], maps)
    sequence = StoreSequence([output])
    rows, row_maps = sequence.read_rows(np.array([5, 1]))
    np.testing.assert_array_equal(rows, images[[5, 1]])
    np.testing.assert_array_equal(row_maps, maps[[5, 1]])
    np.testing.assert_array_equal(sequence.labels(), maps)


def test_label_maps_of_the_wrong_shape_are_refused_and_a_class_store_is_not_resumed_as_maps(tmp_path):
    store = open_partial(tmp_path / "out.zarr", 4, (4, 4, 3), 2, {}, labels=MAPS)
    with pytest.raises(StoreError, match=r"labels of shape \(2, 4, 4\)"):
        store.write_chunk(0, _images(2)[0], np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(StoreError, match="outside 0..255"):
        store.write_chunk(0, _images(2)[0], np.full((2, 4, 4), 300))
    store.write_chunk(0, _images(2)[0], _label_maps(2))
    resumed = open_partial(tmp_path / "out.zarr", 4, (4, 4, 3), 2, {}, labels=MAPS)
    assert resumed.pending_chunks() == [1]
    as_classes = open_partial(tmp_path / "out.zarr", 4, (4, 4, 3), 2, {})
    assert as_classes.pending_chunks() == [0, 1] and as_classes.label_shape == ()


def test_stores_with_class_labels_and_label_maps_are_not_read_as_one(tmp_path):
    images, labels = _images(2)
    write_store(tmp_path / "classes.zarr", images, labels, 2, {})
    write_store(tmp_path / "maps.zarr", images, _label_maps(2), 2, {}, layout=MAPS)
    with pytest.raises(StoreError, match="different label layouts"):
        StoreSequence([tmp_path / "classes.zarr", tmp_path / "maps.zarr"])
