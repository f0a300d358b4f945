"""Tests of the position-aware L2 distillation loss (zoominnet_d2.modeling.losses), Eq. 21."""
import math

import numpy as np
import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes before Detectron2)
from zoominnet_d2.modeling.losses import level_scale_normalized, position_aware_l2


def loop_reference(teacher, student, mask):
    """Eq. 19-21 (without the weight) with explicit loops, in numpy float64."""
    t, s, m = teacher.numpy(), student.numpy(), mask.numpy()
    n, c, h, w = t.shape
    total, count = 0.0, 0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if m[i, y, x]:
                    count += 1
                    for k in range(c):
                        total += float(t[i, k, y, x] - s[i, k, y, x]) ** 2
    return total / count


def random_inputs(seed, shape=(2, 3, 4, 5), p=0.3):
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = shape
    teacher = torch.randn(shape, generator=gen, dtype=torch.float64)
    student = torch.randn(shape, generator=gen, dtype=torch.float64)
    mask = torch.rand(n, h, w, generator=gen) < p
    return teacher, student, mask


@pytest.mark.parametrize("seed", range(4))
def test_matches_loops(seed):
    teacher, student, mask = random_inputs(seed)
    assert mask.any() and not mask.all()
    loss = position_aware_l2(teacher, student, mask)
    assert loss.dim() == 0
    assert math.isclose(loss.item(), loop_reference(teacher, student, mask), rel_tol=1e-12)


def test_full_mask_is_sum_over_channels_mean_over_positions():
    teacher, student, _ = random_inputs(5, shape=(3, 4, 2, 6))
    mask = torch.ones(3, 2, 6, dtype=torch.bool)
    expected = ((teacher - student) ** 2).sum().item() / (3 * 2 * 6)
    assert math.isclose(position_aware_l2(teacher, student, mask).item(), expected, rel_tol=1e-12)


def test_gradient():
    """d loss / d S = 2 (S - T) * mask / count; the teacher gets no gradient."""
    teacher, student, mask = random_inputs(6)
    teacher.requires_grad_(True)
    student.requires_grad_(True)
    position_aware_l2(teacher, student, mask).backward()
    expected = 2 * (student.detach() - teacher.detach()) * mask[:, None] / mask.sum()
    torch.testing.assert_close(student.grad, expected, rtol=1e-12, atol=0)
    assert teacher.grad is None


def test_float32_and_numpy_agree():
    teacher, student, mask = random_inputs(7, shape=(2, 8, 5, 7))
    loss32 = position_aware_l2(teacher.float(), student.float(), mask)
    assert loss32.dtype == torch.float32
    t, s, m = teacher.numpy(), student.numpy(), mask.numpy()
    expected = ((t - s) ** 2).sum(axis=1)[m].sum() / m.sum()
    assert np.isclose(loss32.item(), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_mask_is_exact_zero_with_zero_gradient(dtype):
    teacher, student, _ = random_inputs(8)
    teacher = teacher.to(dtype).requires_grad_(True)
    student = (student.to(dtype) - 10).requires_grad_(True)  # negative sum: no -0.0
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    loss = position_aware_l2(teacher, student, mask)
    assert loss.item() == 0.0 and math.copysign(1.0, loss.item()) == 1.0
    assert loss.requires_grad  # still in the graph: backward works when summed with others
    (loss + 0).backward()
    assert student.grad is not None and torch.count_nonzero(student.grad) == 0
    assert teacher.grad is None


def test_mask_on_masked_positions_only():
    """Values outside the mask, however large, do not matter."""
    teacher, student, mask = random_inputs(9)
    before = position_aware_l2(teacher, student, mask).item()
    student2 = student.clone()
    student2[~mask[:, None].expand_as(student2)] = 1e6
    assert position_aware_l2(teacher, student2, mask).item() == before


def test_shape_checks():
    t = torch.zeros(2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 5\).*\(2, 3, 4, 6\)"):
        position_aware_l2(t, torch.zeros(2, 3, 4, 6), torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 5\).*\(1, 3, 4, 5\)"):
        position_aware_l2(t, torch.zeros(1, 3, 4, 5), torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="teacher"):
        three_d = torch.zeros(3, 4, 5)
        position_aware_l2(three_d, three_d, torch.zeros(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask.*\(2, 5, 4\)"):
        position_aware_l2(t, t, torch.zeros(2, 5, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        position_aware_l2(t, t, torch.zeros(2, 4, 5))


def level_rms_reference(x):
    """x / sqrt(mean of its squared elements), the mean with a Python loop (float64)."""
    values = x.flatten().tolist()
    return x / math.sqrt(sum(v * v for v in values) / len(values))


@pytest.mark.parametrize("seed", range(3))
def test_level_rms_scale_matches_loops(seed):
    teacher, student, mask = random_inputs(seed)
    loss = position_aware_l2(level_scale_normalized(teacher), level_scale_normalized(student), mask)
    expected = loop_reference(level_rms_reference(teacher), level_rms_reference(student), mask)
    assert math.isclose(loss.item(), expected, rel_tol=1e-10)


def test_level_rms_scale_ignores_the_scale_of_either_map():
    """The property DISTILL_SCALE "level_rms" is for: a teacher level 30x larger (as the
    AdamW teacher's P7 on real frames) or a rescaled student gives the same loss, and the
    gradient has no component along the student map, so it never pulls the student's scale."""
    teacher, student, mask = random_inputs(7)
    base = position_aware_l2(level_scale_normalized(teacher), level_scale_normalized(student), mask)
    for t_scale, s_scale in [(30.0, 1.0), (1.0, 0.05), (12.5, 3.0)]:
        scaled = position_aware_l2(level_scale_normalized(t_scale * teacher),
                                   level_scale_normalized(s_scale * student), mask)
        assert math.isclose(scaled.item(), base.item(), rel_tol=1e-10)
    raw_30x = position_aware_l2(30.0 * teacher, student, mask)
    assert raw_30x.item() > 100 * position_aware_l2(teacher, student, mask).item()

    student.requires_grad_(True)
    position_aware_l2(level_scale_normalized(teacher), level_scale_normalized(student), mask).backward()
    radial = float((student.grad * student).sum())
    assert abs(radial) < 1e-10 * float(student.grad.norm() * student.detach().norm())
    assert float(student.grad.norm()) > 0


def test_level_rms_scale_of_a_zero_map_stays_zero():
    zeros = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    assert torch.equal(level_scale_normalized(zeros), zeros)
