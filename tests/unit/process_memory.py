"""Resident memory of a process, for the fuzzers' and benchmarks' figures (Linux /proc)."""


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0
