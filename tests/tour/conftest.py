import os

import pytest

from cnnkit.tour import parse_stages, run_tour


@pytest.fixture(scope="session")
def quick_tour(tmp_path_factory):
    """One ``--quick`` tour for every test here (all stages, or CNNKIT_TOUR_STAGES such as "1,4" while developing)."""
    wanted = os.environ.get("CNNKIT_TOUR_STAGES")
    return run_tour(tmp_path_factory.mktemp("tour"), stages=parse_stages(wanted) if wanted else None, quick=True, progress=False)


@pytest.fixture
def section(quick_tour, request):
    """The section of the stage named by the test's ``stage`` marker; skips when it was not run."""
    number = request.node.get_closest_marker("stage").args[0]
    found = [s for s in quick_tour.sections if s.number == number]
    if not found:
        pytest.skip(f"stage {number} not in CNNKIT_TOUR_STAGES")
    assert found[0].error is None, f"stage {number} failed: {found[0].error}\n{found[0].details}"
    return found[0]
