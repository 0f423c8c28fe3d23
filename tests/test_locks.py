"""Every advisory lock vitmon takes has its own id: a shared id makes unrelated work wait on
each other (migrations once waited on every checkpoint's partition check)."""

from monitor.store import locks


def test_advisory_lock_ids_are_distinct_and_fit_postgres_keys():
    ids = {name: value for name, value in vars(locks).items() if name.isupper()}
    assert len(ids) >= 5
    assert len(set(ids.values())) == len(ids), ids
    for name, value in ids.items():
        limit = 2**31 if name.endswith("_CLASS") else 2**63  # int4 class key or bigint key
        assert 0 < value < limit, name
