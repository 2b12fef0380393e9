import pytest
import torch

from univigu_hf.utils.checks import all_finite


@pytest.mark.parametrize(
    "tensor,expected",
    [
        (torch.randn(4, 8), True),
        (torch.tensor([1.0, float("nan")]), False),
        (torch.tensor([1.0, float("inf")]), False),
        (torch.tensor([float("-inf"), 0.0]), False),
        (torch.tensor([float("inf"), float("-inf")]), False),  # the sum is NaN as well
        (torch.full((4,), 60000.0, dtype=torch.float16), True),  # finite values whose float16 sum overflows
        (torch.zeros(0), True),
        (torch.arange(5), True),
        (torch.tensor([True, False]), True),
    ],
    ids=["finite", "nan", "inf", "minus_inf", "inf_minus_inf", "sum_overflow", "empty", "int", "bool"],
)
def test_all_finite_matches_isfinite_all(tensor, expected):
    assert all_finite(tensor) is expected
    if tensor.is_floating_point():
        assert bool(torch.isfinite(tensor).all()) is expected
