"""What machine a result was measured on, for the headers of results and benchmark files."""
import os
import platform
import re


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" where there is none): machines of
    one cloud type differ in it, and results move between them."""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
    except OSError:
        return "unknown"
    return m.group(1).strip() if m else "unknown"


def machine() -> str:
    """One line for a results or benchmark file: architecture, cores, CPU model, Python, OS."""
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
            f"{platform.platform()}")
