"""The watch's per-recording memory: version and identity packed in one bytes object."""

from __future__ import annotations

import sys

from crunchctl.watch.queue import Attempted, _identity


def test_versions_and_identities_round_trip_and_stay_one_small_object_each():
    a = Attempted()
    path = "/data/rec/2024-04-17_13-05-22.tiq"
    big = (2**40 + 5, 1_713_359_122_123_456_789)
    assert a.get(path) is None and path not in a
    a[path] = big
    assert a.get(path) == big and path in a and len(a) == 1
    assert a.identity(path) is None
    ident = _identity(1_713_359_122_000_000_001, bytes(range(16)))
    a.set_identity(path, ident)
    a[path] = (big[0], big[1] + 1)  # the version the worker read: identity kept
    assert a.get(path) == (big[0], big[1] + 1) and a.identity(path) == ident
    # The whole entry is one bytes object: 16 bytes of version, 24 of identity.
    (packed,) = a._d.values()
    assert isinstance(packed, bytes) and len(packed) == 40 and sys.getsizeof(packed) < 80
    a.set_identity(path, None)
    assert a.identity(path) is None and a.get(path) == (big[0], big[1] + 1)
    a.set_identity("/data/rec/unknown.tiq", ident)  # no version: nothing to attach it to
    assert "/data/rec/unknown.tiq" not in a
    assert a.pop(path) == (big[0], big[1] + 1) and a.pop(path) is None and len(a) == 0
    a[path] = (0, -1)  # a folder named like a recording, a time before 1970
    assert a.get(path) == (0, -1)
    del a[path]
    assert a.get(path, (1, 2)) == (1, 2)
