"""Running a sharded stage whole and in two shards, for the tests that its output does not depend on that."""

from sda_core.store import StoreSequence


def whole_and_in_two_shards(run, directory, count):
    """run(output, shard, num_shards) once as one shard and once as two; (images, labels) of each."""
    run(directory / "one.zarr", 0, 1)
    run(directory / "a.zarr", 0, 2)
    run(directory / "b.zarr", 1, 2)
    whole = StoreSequence([directory / "one.zarr"]).read(0, count)
    sharded = StoreSequence([directory / "a.zarr", directory / "b.zarr"]).read(0, count)
    return whole, sharded
