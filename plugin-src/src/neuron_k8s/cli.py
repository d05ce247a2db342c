"""What the console scripts share: flags whose defaults come from environment variables, and
a process that runs a component until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Protocol, TypeVar

from neuron_k8s import logs


def boolean(text: str) -> bool:
    """A flag's or variable's true or false (also 1/0, yes/no, on/off)."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text}")
    return value


def env_defaults(
    parser: argparse.ArgumentParser,
    flags: Sequence[tuple[str, Sequence[str], Callable[[str], Any]]],
    environ: Mapping[str, str],
) -> None:
    """For each (dest, environment variables, type), the first variable set and not empty
    becomes the flag's default, so that a flag on the command line still wins. A bad value
    exits with status 2 naming the variable, as argparse does for a bad flag."""
    overrides: dict[str, Any] = {}
    for dest, names, kind in flags:
        for name in names:
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            try:
                overrides[dest] = kind(raw)
            except (ValueError, argparse.ArgumentTypeError) as err:
                parser.error(f"{name}={raw!r}: {err}")
            break
    parser.set_defaults(**overrides)


class Validated(Protocol):
    def validate(self) -> None: ...


_C = TypeVar("_C", bound=Validated)


def build_config(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    config_type: Callable[..., _C],
    error: type[Exception],
) -> _C:
    """The config of the parsed flags (those the dataclass has), validated; a bad log level or
    an `error` from validate() exits with status 2 and the sentence."""
    if args.log_level not in logs.LEVELS:
        parser.error(f"--log-level must be one of {', '.join(logs.LEVELS)}")
    known = {f.name for f in fields(config_type)}  # type: ignore[arg-type]
    config = config_type(**{k: v for k, v in vars(args).items() if k in known})
    try:
        config.validate()
    except error as err:
        parser.error(str(err))
    return config


class Component(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def run_until_signalled(
    component: Component, prog: str, log_name: str, errors: tuple[type[Exception], ...]
) -> int:
    """Start the component, wait for SIGTERM or SIGINT, stop it. A start that fails with one
    of `errors` is stopped again and exits 1 with the reason on stderr."""
    log = logs.get_logger(log_name)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received, stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        component.start()
    except errors as err:
        log.error("startup failed", error=str(err))
        component.stop()
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    while not stop.wait(1.0):
        pass
    component.stop()
    return 0
