import pytest


@pytest.fixture
def amx(monkeypatch):
    """Set what the CPU is said to have: ``amx(True)`` an AMX Xeon, ``amx(False)`` any other CPU."""
    import deblur_core.precision as precision

    return lambda present: monkeypatch.setattr(precision, "cpu_has_amx_bf16", lambda: present)
