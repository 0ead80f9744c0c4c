"""The one size parser: every unit the actioner's config and the lab's scenarios accepted, nothing else."""

from __future__ import annotations

import pytest

from virtbalance.sizes import format_size, parse_size

KI, MI, GI, TI = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("spellings", "size"),
    [
        (("7", "7b", "7B"), 7),
        (("2k", "2K", "2kb", "2KB"), 2000),
        (("2ki", "2Ki", "2kib", "2KiB"), 2 * KI),
        (("3m", "3M", "3mb", "3MB"), 3 * 10**6),
        (("3mi", "3Mi", "3mib", "3MiB"), 3 * MI),
        (("4g", "4G", "4gb", "4GB"), 4 * 10**9),
        (("4gi", "4Gi", "4gib", "4GiB"), 4 * GI),
        (("5t", "5T", "5tb", "5TB"), 5 * 10**12),
        (("5ti", "5Ti", "5tib", "5TiB"), 5 * TI),
    ],
)
def test_every_unit(spellings, size):
    for text in spellings:
        assert parse_size(text) == size, text


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        (4096, 4096),
        (0, 0),
        ("0", 0),
        ("1.5KiB", 1536),
        (" 512 kib ", 512 * KI),
        ("64 GiB", 64 * GI),
    ],
)
def test_numbers_fractions_and_spaces(raw, size):
    assert parse_size(raw) == size


@pytest.mark.parametrize(
    "raw", ["", "lots", "1XB", "12 parsecs", "1PiB", "GiB", "-5", "1e3", -1, 1.5, True, None]
)
def test_rejects_with_the_accepted_forms(raw):
    with pytest.raises(ValueError, match="size"):
        parse_size(raw)


@pytest.mark.parametrize(
    ("size", "text"), [(64 * MI, "64MiB"), (GI, "1GiB"), (3 * KI, "3KiB"), (1000, "1000"), (0, "0")]
)
def test_format_size_reads_back(size, text):
    assert format_size(size) == text
    assert parse_size(text) == size
