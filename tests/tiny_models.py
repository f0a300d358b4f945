"""Configs of the shrunk CPU models that several test modules build."""
from pathlib import Path

SYNTH = Path(__file__).resolve().parents[1] / "configs" / "synth"


def write_teacher_yaml(path: Path, square: int = 256) -> Path:
    """A teacher config: configs/synth/tnet.yaml (absolute _BASE_) with the shrink."""
    path.write_text(
        f'_BASE_: "{SYNTH / "tnet.yaml"}"\n'
        "MODEL:\n"
        "  RESNETS: {STEM_OUT_CHANNELS: 8, RES2_OUT_CHANNELS: 8}\n"
        "  FPN: {OUT_CHANNELS: 16}\n"
        "  RETINANET: {NUM_CONVS: 1}\n"
        f"INPUT: {{SQUARE_SIZE: {square}, MIN_SIZE_TRAIN: [{square}], MIN_SIZE_TEST: {square}}}\n"
    )
    return path
