"""The template's functions, loaded from their code directories and invoked like Lambda would.

Each function gets a small pool of "containers": separate imports of its handler module, each
serving one event at a time (Lambda's model, and what Powertools' resolvers assume).
"""

from __future__ import annotations

import importlib.util
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sandbox.template import Stack, function_code


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class Function:
    """One function of the template with up to `concurrency` warm containers."""

    def __init__(self, stack: Stack, logical: str, concurrency: int = 4) -> None:
        self.logical = logical
        self.stack = stack
        props = stack.template["Resources"][logical]["Properties"]
        globals_ = stack.template.get("Globals", {}).get("Function", {})
        self.memory = int(props.get("MemorySize", globals_.get("MemorySize", 128)))
        self.timeout = float(props.get("Timeout", globals_.get("Timeout", 3)))
        self._code_dir, handler = function_code(logical, stack.template)
        self._module_file, _, self._handler_name = handler.rpartition(".")
        self._idle: queue.Queue[ModuleType] = queue.Queue()
        self._created = 0
        self._limit = concurrency
        self._lock = threading.Lock()

    def _container(self) -> ModuleType:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._created < self._limit:
                self._created += 1
                return self._cold_start(self._created)
        return self._idle.get()

    def _cold_start(self, number: int) -> ModuleType:
        path = self._code_dir / f"{self._module_file.replace('.', '/')}.py"
        name = f"sandbox_lambda_{self.logical}_{number}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler on `event` in a free container and return what it returns."""
        module = self._container()
        try:
            context = LambdaContext(
                function_name=f"{self.stack.prefix}-{self.logical}",
                memory_limit_in_mb=self.memory,
                invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{self.stack.prefix}-{self.logical}",
                aws_request_id=str(uuid.uuid4()),
                deadline=time.monotonic() + self.timeout,
            )
            return getattr(module, self._handler_name)(event, context)
        finally:
            self._idle.put(module)


def configure_environment(stack: Stack, functions: list[str], extra: dict[str, str]) -> None:
    """Give the process the union of the functions' template environments, plus sandbox settings.

    All functions share one process here, so they share one environment; the template gives
    them the same globals and names no variable twice with different values.
    """
    merged: dict[str, str] = {}
    for logical in functions:
        merged.update(stack.environment(logical))
    merged.update(extra)
    os.environ.update(merged)


def template_functions(stack: Stack) -> list[str]:
    """Logical ids of every AWS::Serverless::Function in the template."""
    return [k for k, v in stack.template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"]
